"""The records a run leaves on disk, and the user errors met while keeping them.

The bottom of the import graph: every fusebench package may import it, and it imports none
of them (only the standard library). One job a module:

- ``atomic``: file and directory writes that a reader never sees half done;
- ``journal``: the append-and-fsync part file of a long job, read back torn-line tolerant;
- ``jsonl``: JSON Lines parsed line by line, an error naming the line;
- ``settings``: which settings differ from the ones a run recorded;
- ``digest``: a file's sha256, the check a recorded file is held to;
- ``space``: a full disk or quota met by a write, as ``DiskFull`` naming the file;
- ``errors``: ``UserError`` (one line, exit code 2) and ``Interrupted`` (exit code 130).
"""
