"""A stand-in for the ``vllm`` console script, which needs a GPU (test_generate_vllm.py puts
a ``vllm`` that runs this file on PATH): ``vllm serve MODEL --port P --served-model-name NAME
...`` serves tests/judges/scripted_server.py's scripted model on that port, with VLLM_API_KEY
as its key and FAKE_VLLM_MAX_MODEL_LEN as its context, and writes its argv and key to
FAKE_VLLM_RECORD (with its pid)."""

import json
import os
import signal
import sys
import time

from tests.judges.scripted_server import ScriptedJudge

args = sys.argv[1:]
assert args[0] == "serve", args
flags = {
    flag: value
    for flag, value in zip(args[2:], [*args[3:], ""], strict=True)
    if flag.startswith("--") and not value.startswith("--")
}
with open(os.environ["FAKE_VLLM_RECORD"], "w", encoding="utf-8") as record:
    json.dump({"argv": args, "api_key": os.environ.get("VLLM_API_KEY"), "pid": os.getpid()}, record)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = ScriptedJudge(
    behaviour="plain",
    max_model_len=int(os.environ.get("FAKE_VLLM_MAX_MODEL_LEN", "4096")),
    served_name=flags["--served-model-name"],
    api_key=os.environ.get("VLLM_API_KEY"),
    port=int(flags["--port"]),
)
with server:
    while True:
        time.sleep(1)
