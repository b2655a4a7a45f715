"""Vocabulary shared by every layer: enums and frozen value types (stdlib only).

Closed sets are Enums; values are frozen dataclasses. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ProbeKind(StrEnum):
    """Every kind of observation the watchdog makes."""

    HEALTH = "health"  # GET /health
    MODELS = "models"  # GET /v1/models lists the model
    TOOL_CALL = "tool_call"  # steps 4b/4c: a real tool call
    ROUND_TRIP = "round_trip"  # step 4d: the tool-result turn
    TOPOLOGY = "topology"  # system_fingerprint carries the expected tag
    PROGRESS = "progress"  # /metrics: the engine's generation-token counter moves
    SSH = "ssh"  # sshd banner
    PING = "ping"  # ICMP echo
    PLUG = "plug"  # the node's smart plug answers, and its relay state
    WITNESS = "witness"  # a reference target (gateway) answers

    @property
    def is_endpoint(self) -> bool:
        """Cluster-level probes of the serving endpoint."""
        return self in _ENDPOINT_PROBES


_ENDPOINT_PROBES = frozenset(
    {
        ProbeKind.HEALTH,
        ProbeKind.MODELS,
        ProbeKind.TOOL_CALL,
        ProbeKind.ROUND_TRIP,
        ProbeKind.TOPOLOGY,
        ProbeKind.PROGRESS,
    }
)


class FailureKind(StrEnum):
    """Why a probe failed. Each has a default hint in :mod:`watchdog.core.hints`."""

    TIMEOUT = "timeout"  # connected (or tried), no complete answer within the timeout
    CONNECT_TIMEOUT = "connect_timeout"  # TCP handshake did not complete
    REFUSED = "refused"  # nothing listens (normal while vLLM loads)
    UNREACHABLE = "unreachable"  # no route / host down / DNS failure
    HTTP_STATUS = "http_status"  # unexpected HTTP status (5xx, 404…)
    AUTH = "auth"  # 401/403: missing or wrong API key
    MODEL_MISSING = "model_missing"  # configured model id not served
    TOOL_CHOICE_DISABLED = "tool_choice_disabled"  # 400 --enable-auto-tool-choice
    NO_TOOL_CALL = "no_tool_call"  # prose instead of tool_calls: tool parser inactive
    BAD_ARGUMENTS = "bad_arguments"  # arguments not a JSON object
    REASONING_LEAK = "reasoning_leak"  # chain of thought in content or arguments
    TRUNCATED = "truncated"  # finish_reason length: reasoning ate max_tokens
    WRONG_TOOL = "wrong_tool"  # called another function than asked
    LOOP = "loop"  # round trip: called the tool again instead of answering
    WRONG_TOPOLOGY = "wrong_topology"  # fingerprint's tp tag differs from the expected one
    CONTEXT_LENGTH = "context_length"  # 400: prompt + max_tokens over --max-model-len
    ENGINE_DEAD = "engine_dead"  # /health 500 (0.10) or 503 (>= 0.20), chat 500: EngineDeadError
    ENGINE_BUSY = "engine_busy"  # 503: request queue full (max_num_queued_reqs)
    SCALING = "scaling"  # 503: elastic scaling in progress
    GENERATION_ERROR = "generation_error"  # 500: the engine failed this one request
    ENGINE_STALLED = "engine_stalled"  # requests running, generation-token counter frozen
    NO_BANNER = "no_banner"  # TCP accepted, sshd said nothing: the wedge signature
    BAD_BANNER = "bad_banner"  # something answered that is not SSH-2.0
    NO_REPLY = "no_reply"  # ICMP echo unanswered
    BAD_RESPONSE = "bad_response"  # malformed / unparseable / oversized body
    PLUG_UNREACHABLE = "plug_unreachable"
    PLUG_AUTH = "plug_auth"
    PLUG_ERROR = "plug_error"
    PLUG_OFF = "plug_off"  # the plug answers and its relay is off: the node has no power
    PROBE_ERROR = "probe_error"  # the probe itself could not run (local fault)

    @property
    def is_config_fault(self) -> bool:
        """Faults that power never fixes: the node is misconfigured, never powered."""
        return self in CONFIG_FAULTS


CONFIG_FAULTS = frozenset(
    {
        FailureKind.AUTH,
        FailureKind.MODEL_MISSING,
        FailureKind.TOOL_CHOICE_DISABLED,
        FailureKind.NO_TOOL_CALL,
        FailureKind.BAD_ARGUMENTS,
        FailureKind.REASONING_LEAK,
        FailureKind.TRUNCATED,
        FailureKind.WRONG_TOOL,
        FailureKind.LOOP,
        FailureKind.WRONG_TOPOLOGY,
        FailureKind.CONTEXT_LENGTH,
    }
)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One observation. ``failure is None`` means the probe passed.

    ``target`` is a human label (``node spark-1`` / ``cluster main``), ``detail`` one line of
    what was seen (never a secret), ``hint`` one line of what to fix. ``data`` carries small
    facts a later probe or the operator may use (e.g. ``tool_call_id``, ``fingerprint``).
    """

    probe: ProbeKind
    target: str
    failure: FailureKind | None
    latency: float
    detail: str = ""
    hint: str = ""
    data: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class PlugReading:
    """What a plug said when asked (pre-validation and witness evidence)."""

    reachable: bool
    is_on: bool | None = None
    watts: float | None = None
    failure: FailureKind | None = None
    detail: str = ""


class NodeClass(StrEnum):
    """Classification of a node, one per node at any time (docs/design.md, "Classes")."""

    UNKNOWN = "unknown"  # not yet armed: never seen healthy, startup timeout not passed
    HEALTHY = "healthy"
    SUSPECT = "suspect"  # failing, thresholds not yet met (confirmation burst)
    WEDGED = "wedged"  # sshd silent, plug on and reachable: power-cycle
    SSH_DOWN = "ssh_down"  # sshd fails but the endpoint served a tool call since: never power
    DEGRADED = "degraded"  # sshd fine, endpoint failing: alert only
    MISCONFIGURED = "misconfigured"  # config fault: alert with hint, never power
    POWERED_OFF = "powered_off"  # plug reports off
    BLIND = "blind"  # the watchdog cannot see: no action anywhere
    CYCLING = "cycling"  # a power cycle is in flight
    BOOTING = "booting"  # in boot / model-load grace after a cycle
    MAINTENANCE = "maintenance"  # paused by an operator: probe and log only
    GIVEN_UP = "given_up"  # budget spent: latched until an operator clears it


class Blocker(StrEnum):
    """What keeps a node's power action from being taken now: its verdict's "blocked by"."""

    BLIND = "blind"  # the watchdog cannot see, or cannot trust what it sees (overloaded)
    WITNESS = "witness"  # a reference target does not answer (below the blind threshold)
    SWEEP = "sweep"  # two or more nodes fail on ssh: every plug is read first
    PLUG = "plug"  # the node's plug is unusable: no power action is possible through it
    BACKOFF = "backoff"  # the growing wait after the node's last power cycle
    IN_FLIGHT = "in_flight"  # ``max_in_flight`` power actions already run
    FLEET_CAP = "fleet_cap"  # the fleet-wide cap on power cycles per window is reached


@dataclass(frozen=True, slots=True)
class Blocked:
    """A power action held back: what holds it (``by``), and the words that say so
    (``text``, appended to the node's reason and shown as what the watchdog did)."""

    by: Blocker
    text: str


class Severity(StrEnum):
    """Alert and log severity; journald priority is derived from it."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def syslog_priority(self) -> int:
        return {"info": 6, "warning": 4, "error": 3, "critical": 2}[self.value]


class EventType(StrEnum):
    """Event types that get a fixed journald MESSAGE_ID (see :mod:`watchdog.telemetry.journal`)."""

    PROBE_FAILED = "probe_failed"
    CLASS_CHANGED = "class_changed"
    NODE_WEDGED = "node_wedged"
    CYCLE_STARTED = "cycle_started"
    CYCLE_STEP = "cycle_step"
    CYCLE_FINISHED = "cycle_finished"
    CYCLE_FAILED = "cycle_failed"
    RECOVERED = "recovered"
    GAVE_UP = "gave_up"
    BLIND = "blind"
    DEGRADED = "degraded"
    MISCONFIGURED = "misconfigured"
    PLUG_PROBLEM = "plug_problem"
    CONFIG_RELOADED = "config_reloaded"
    CONFIG_REJECTED = "config_rejected"
    STARTED = "started"
    STOPPING = "stopping"
    ALERT_SENT = "alert_sent"  # an alert was handed to the dispatcher (trigger or resolve)
    ALERT_FAILED = "alert_failed"  # a channel could not deliver it
    OPERATOR = "operator"  # pause, resume, clear or cycle by an operator
    STATE_PROBLEM = "state_problem"  # the persisted state was unusable and was moved aside


class AlertStatus(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


class Condition(StrEnum):
    """What an alert is about; with the node it forms the stable dedup key."""

    WEDGED = "wedged"
    SSH_DOWN = "ssh_down"  # sshd fails while the model still serves
    DEGRADED = "degraded"
    MISCONFIGURED = "misconfigured"
    POWERED_OFF = "powered_off"
    BLIND = "blind"
    GIVEN_UP = "given_up"
    PLUG = "plug"  # actuator unusable before it is needed
    CYCLE_FAILED = "cycle_failed"
    STATE_RESET = "state_reset"  # the watchdog's own state file was unusable and set aside
    OVERLOADED = "watchdog_overloaded"  # the watchdog cannot keep up: nothing is judged


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert notification: trigger or resolve of (node, condition).

    ``seen`` says what was observed, ``done`` what the watchdog did, ``todo`` what a human
    should do (the failure hint). ``at`` is Unix time.
    """

    node: str
    cluster: str
    condition: Condition
    status: AlertStatus
    severity: Severity
    summary: str
    seen: str = ""
    done: str = ""
    todo: str = ""
    at: float = 0.0
    failure: FailureKind | None = None
    # A trigger re-stated at start-up or after a reload for a page that was already open:
    # the dispatcher adopts it as open without sending it again.
    restated: bool = False

    @property
    def dedup_key(self) -> str:
        return f"cluster-watchdog/{self.node}/{self.condition.value}"


# --------------------------------------------------------------------------- decisions
@dataclass(frozen=True, slots=True)
class Transition:
    """A node (or the watchdog itself) changed class; ``reason`` says why, in one line."""

    node: str
    cluster: str
    old: NodeClass
    new: NodeClass
    at: float
    reason: str


class ActionKind(StrEnum):
    POWER_CYCLE = "power_cycle"
    POWER_ON = "power_on"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class PowerAction:
    """Switch a node's plug: a full cycle, or only on (a powered-off node, if configured)."""

    kind: ActionKind
    node: str
    reason: str
    manual: bool = False


@dataclass(frozen=True, slots=True)
class AlertAction:
    event: AlertEvent
    kind: ActionKind = ActionKind.ALERT


Action = PowerAction | AlertAction
