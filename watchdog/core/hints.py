"""One-line fix hints per failure kind (vocabulary layer).

Written per failure kind from the endpoint steps 4a–4d (docs/design.md, "The endpoint steps")
and the sshd, plug and network faults; probes may
give a more specific hint (e.g. naming the model ids the server does list).
"""

from __future__ import annotations

from watchdog.core.model import FailureKind

HINTS: dict[FailureKind, str] = {
    FailureKind.TIMEOUT: "no answer in time: engine stuck or overloaded; check nvidia-smi and the "
    "vLLM log on the node",
    FailureKind.CONNECT_TIMEOUT: "TCP connect timed out: host down, firewalled or wedged",
    FailureKind.REFUSED: "nothing listens: vLLM is down, or still loading the model (normal "
    "while the model loads, minutes after boot: vLLM refuses connections until it is ready)",
    FailureKind.UNREACHABLE: "no route to host: check the address, the network and the node's "
    "power",
    FailureKind.HTTP_STATUS: "unexpected HTTP status: read the vLLM log on the node (and any "
    "reverse proxy's)",
    FailureKind.AUTH: "401/403: send the right key (Authorization: Bearer $VLLM_API_KEY); it must "
    "match VLLM_API_KEY on the server",
    FailureKind.MODEL_MISSING: "configured model id differs from --served-model-name: match it "
    "exactly; confirm via /v1/models",
    FailureKind.TOOL_CHOICE_DISABLED: "start vLLM with --enable-auto-tool-choice and the model's "
    "--tool-call-parser",
    FailureKind.NO_TOOL_CALL: "tool call described in prose, tool_calls null: verify "
    "--enable-auto-tool-choice and the correct --tool-call-parser in the startup log",
    FailureKind.BAD_ARGUMENTS: "arguments are not parseable JSON: genuine parser/model mismatch; "
    "re-run, and if persistent file upstream",
    FailureKind.REASONING_LEAK: "reasoning inside the tool call's arguments, or <think> markers "
    "in content with no reasoning field: start vLLM with the model's prescribed "
    "--reasoning-parser; confirm content and reasoning are separate",
    FailureKind.TRUNCATED: "finish_reason length: reasoning ate the output budget; raise "
    "endpoint.sampling.max_tokens (2048–4096), keeping prompt + max_tokens within the server's "
    "--max-model-len (see max_model_len in GET /v1/models)",
    FailureKind.WRONG_TOOL: "model called another function than the one asked for: check the "
    "tool-call parser and the chat template",
    FailureKind.LOOP: "model repeats the tool call instead of using its result: tool-result turn "
    "not consumed; check the tool_call_id echo and the parser (article 4d)",
    FailureKind.WRONG_TOPOLOGY: "the server was started with another tensor-parallel size than "
    "expect_fingerprint says (the tp tag is fixed at start-up): check --tensor-parallel-size in "
    "the service's command line and the Ray cluster, or correct expect_fingerprint",
    FailureKind.CONTEXT_LENGTH: "prompt + max_tokens exceed the server's --max-model-len: lower "
    "endpoint.sampling.max_tokens below max_model_len (GET /v1/models), or start vLLM with a "
    "larger --max-model-len",
    FailureKind.ENGINE_DEAD: "the engine core died (EngineDeadError in the vLLM log): restart the "
    "vLLM service on the node; without VLLM_KEEP_ALIVE_ON_ENGINE_DEATH the API process exits "
    "within seconds (let systemd's Restart= bring it back), with it set the server stays up "
    "answering errors until restarted; the log names the cause (often CUDA OOM or NCCL)",
    FailureKind.ENGINE_BUSY: "503 queue full: the engine is busy and rejects new requests "
    "(--max-num-queued-reqs); lower the load or raise the limit, it recovers by itself",
    FailureKind.SCALING: "503 scaling: elastic expert-parallel scaling is in progress; wait for "
    "it to finish, it recovers by itself",
    FailureKind.GENERATION_ERROR: "500 internal server error on one request: the engine failed "
    "this generation; read the vLLM log for the traceback",
    FailureKind.ENGINE_STALLED: "requests are running but the engine generates no tokens: the "
    "engine is stuck (/health stays 200); check nvidia-smi and the vLLM log, and restart the "
    "service",
    FailureKind.NO_BANNER: "TCP accepted but sshd sent no banner: the node is wedged (typically "
    "out of memory)",
    FailureKind.BAD_BANNER: "the port answers but not with SSH-2.0: wrong port or another service",
    FailureKind.NO_REPLY: "no ICMP echo reply: host down, or ICMP filtered",
    FailureKind.BAD_RESPONSE: "malformed or oversized response: is this a vLLM endpoint? check "
    "the base URL and any reverse proxy",
    FailureKind.PLUG_UNREACHABLE: "smart plug does not answer: check its address, Wi-Fi and local "
    "API (some firmware starts it minutes after a power loss)",
    FailureKind.PLUG_AUTH: "smart plug rejected the credentials: set the TP-Link cloud account "
    "credentials for KLAP/Tapo devices",
    FailureKind.PLUG_ERROR: "smart plug answered unexpectedly: check the plug type, outlet and "
    "firmware",
    FailureKind.PLUG_OFF: "the plug is off: the node has no power; switch it on, or run "
    "'cluster-watchdog cycle NODE'",
    FailureKind.PROBE_ERROR: "the probe could not run on the watchdog host: read its log",
}


def hint_for(kind: FailureKind | None) -> str:
    """The default one-line hint for ``kind`` ('' when the probe passed)."""
    return "" if kind is None else HINTS[kind]
