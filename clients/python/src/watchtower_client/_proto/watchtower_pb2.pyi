from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_PAUSED: _ClassVar[RunState]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_OBSERVER: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]

class RejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECTION_REASON_UNSPECIFIED: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_KEY: _ClassVar[RejectionReason]
    REJECTION_REASON_MISSING_VALUE: _ClassVar[RejectionReason]
    REJECTION_REASON_WRONG_TYPE: _ClassVar[RejectionReason]
    REJECTION_REASON_NOT_FINITE: _ClassVar[RejectionReason]
    REJECTION_REASON_OUT_OF_RANGE: _ClassVar[RejectionReason]
    REJECTION_REASON_IMMUTABLE: _ClassVar[RejectionReason]
    REJECTION_REASON_EXPIRED: _ClassVar[RejectionReason]
    REJECTION_REASON_CANCELLED: _ClassVar[RejectionReason]
    REJECTION_REASON_CONFLICT: _ClassVar[RejectionReason]
    REJECTION_REASON_BATCH_ABORTED: _ClassVar[RejectionReason]
    REJECTION_REASON_TICK_PASSED: _ClassVar[RejectionReason]
    REJECTION_REASON_SCHEDULE_FULL: _ClassVar[RejectionReason]
    REJECTION_REASON_NOT_SCHEDULED: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_COMMAND: _ClassVar[RejectionReason]
    REJECTION_REASON_NOT_REVERTIBLE: _ClassVar[RejectionReason]

class ValueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_TYPE_UNSPECIFIED: _ClassVar[ValueType]
    VALUE_TYPE_NUMBER: _ClassVar[ValueType]
    VALUE_TYPE_INTEGER: _ClassVar[ValueType]
    VALUE_TYPE_FLAG: _ClassVar[ValueType]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_PAUSED: RunState
ROLE_UNSPECIFIED: Role
ROLE_OBSERVER: Role
ROLE_OPERATOR: Role
REJECTION_REASON_UNSPECIFIED: RejectionReason
REJECTION_REASON_UNKNOWN_KEY: RejectionReason
REJECTION_REASON_MISSING_VALUE: RejectionReason
REJECTION_REASON_WRONG_TYPE: RejectionReason
REJECTION_REASON_NOT_FINITE: RejectionReason
REJECTION_REASON_OUT_OF_RANGE: RejectionReason
REJECTION_REASON_IMMUTABLE: RejectionReason
REJECTION_REASON_EXPIRED: RejectionReason
REJECTION_REASON_CANCELLED: RejectionReason
REJECTION_REASON_CONFLICT: RejectionReason
REJECTION_REASON_BATCH_ABORTED: RejectionReason
REJECTION_REASON_TICK_PASSED: RejectionReason
REJECTION_REASON_SCHEDULE_FULL: RejectionReason
REJECTION_REASON_NOT_SCHEDULED: RejectionReason
REJECTION_REASON_UNKNOWN_COMMAND: RejectionReason
REJECTION_REASON_NOT_REVERTIBLE: RejectionReason
VALUE_TYPE_UNSPECIFIED: ValueType
VALUE_TYPE_NUMBER: ValueType
VALUE_TYPE_INTEGER: ValueType
VALUE_TYPE_FLAG: ValueType

class RevertCommandRequest(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class RevertCommandResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: GodResponse
    def __init__(self, response: _Optional[_Union[GodResponse, _Mapping]] = ...) -> None: ...

class ListScheduledCommandsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListScheduledCommandsResponse(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[ScheduledCommand]
    def __init__(self, commands: _Optional[_Iterable[_Union[ScheduledCommand, _Mapping]]] = ...) -> None: ...

class ScheduledCommand(_message.Message):
    __slots__ = ("command", "principal")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    command: GodCommand
    principal: str
    def __init__(self, command: _Optional[_Union[GodCommand, _Mapping]] = ..., principal: _Optional[str] = ...) -> None: ...

class CancelScheduledCommandRequest(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class CancelScheduledCommandResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: GodResponse
    def __init__(self, response: _Optional[_Union[GodResponse, _Mapping]] = ...) -> None: ...

class ControlEngineRequest(_message.Message):
    __slots__ = ("pause", "resume", "step", "set_tps")
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SET_TPS_FIELD_NUMBER: _ClassVar[int]
    pause: ControlPause
    resume: ControlResume
    step: ControlStep
    set_tps: ControlSetTps
    def __init__(self, pause: _Optional[_Union[ControlPause, _Mapping]] = ..., resume: _Optional[_Union[ControlResume, _Mapping]] = ..., step: _Optional[_Union[ControlStep, _Mapping]] = ..., set_tps: _Optional[_Union[ControlSetTps, _Mapping]] = ...) -> None: ...

class ControlPause(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ControlResume(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ControlStep(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: int
    def __init__(self, ticks: _Optional[int] = ...) -> None: ...

class ControlSetTps(_message.Message):
    __slots__ = ("tps",)
    TPS_FIELD_NUMBER: _ClassVar[int]
    tps: float
    def __init__(self, tps: _Optional[float] = ...) -> None: ...

class ControlEngineResponse(_message.Message):
    __slots__ = ("run_state", "tick", "target_tps")
    RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    TARGET_TPS_FIELD_NUMBER: _ClassVar[int]
    run_state: RunState
    tick: int
    target_tps: float
    def __init__(self, run_state: _Optional[_Union[RunState, str]] = ..., tick: _Optional[int] = ..., target_tps: _Optional[float] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("principal", "role")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: Role
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("key", "from_tick", "to_tick", "page_size", "page_token")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FROM_TICK_FIELD_NUMBER: _ClassVar[int]
    TO_TICK_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    key: str
    from_tick: int
    to_tick: int
    page_size: int
    page_token: str
    def __init__(self, key: _Optional[str] = ..., from_tick: _Optional[int] = ..., to_tick: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[GodResponse]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[GodResponse, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetServerStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerStatsResponse(_message.Message):
    __slots__ = ("active_subscribers", "websocket_connections", "snapshots_encoded", "snapshots_delivered", "latest_tick", "run_id")
    ACTIVE_SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_ENCODED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    LATEST_TICK_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    active_subscribers: int
    websocket_connections: int
    snapshots_encoded: int
    snapshots_delivered: int
    latest_tick: int
    run_id: str
    def __init__(self, active_subscribers: _Optional[int] = ..., websocket_connections: _Optional[int] = ..., snapshots_encoded: _Optional[int] = ..., snapshots_delivered: _Optional[int] = ..., latest_tick: _Optional[int] = ..., run_id: _Optional[str] = ...) -> None: ...

class ApplyCommandRequest(_message.Message):
    __slots__ = ("command", "validate_only")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    command: GodCommand
    validate_only: bool
    def __init__(self, command: _Optional[_Union[GodCommand, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class ApplyCommandsRequest(_message.Message):
    __slots__ = ("commands", "validate_only")
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[GodCommand]
    validate_only: bool
    def __init__(self, commands: _Optional[_Iterable[_Union[GodCommand, _Mapping]]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class ApplyCommandsResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[GodResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[GodResponse, _Mapping]]] = ...) -> None: ...

class ApplyCommandResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: GodResponse
    def __init__(self, response: _Optional[_Union[GodResponse, _Mapping]] = ...) -> None: ...

class SubscribeTelemetryRequest(_message.Message):
    __slots__ = ("interval_ms", "history")
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    interval_ms: int
    history: int
    def __init__(self, interval_ms: _Optional[int] = ..., history: _Optional[int] = ...) -> None: ...

class SubscribeTelemetryResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: WatchtowerSnapshot
    def __init__(self, snapshot: _Optional[_Union[WatchtowerSnapshot, _Mapping]] = ...) -> None: ...

class ListParametersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListParametersResponse(_message.Message):
    __slots__ = ("parameters",)
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    def __init__(self, parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ...) -> None: ...

class GodCommand(_message.Message):
    __slots__ = ("id", "key", "value", "reason", "expected_value", "apply_at_tick")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    APPLY_AT_TICK_FIELD_NUMBER: _ClassVar[int]
    id: str
    key: str
    value: ParameterValue
    reason: str
    expected_value: ParameterValue
    apply_at_tick: int
    def __init__(self, id: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[ParameterValue, _Mapping]] = ..., reason: _Optional[str] = ..., expected_value: _Optional[_Union[ParameterValue, _Mapping]] = ..., apply_at_tick: _Optional[int] = ...) -> None: ...

class ParameterValue(_message.Message):
    __slots__ = ("number", "integer", "flag")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    number: float
    integer: int
    flag: bool
    def __init__(self, number: _Optional[float] = ..., integer: _Optional[int] = ..., flag: _Optional[bool] = ...) -> None: ...

class GodResponse(_message.Message):
    __slots__ = ("command_id", "success", "error", "applied_tick", "old_value", "new_value", "key", "reason", "field", "allowed", "rejection", "principal", "applied_while_paused", "dry_run")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TICK_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    APPLIED_WHILE_PAUSED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    success: bool
    error: str
    applied_tick: int
    old_value: ParameterValue
    new_value: ParameterValue
    key: str
    reason: str
    field: str
    allowed: str
    rejection: RejectionReason
    principal: str
    applied_while_paused: bool
    dry_run: bool
    def __init__(self, command_id: _Optional[str] = ..., success: _Optional[bool] = ..., error: _Optional[str] = ..., applied_tick: _Optional[int] = ..., old_value: _Optional[_Union[ParameterValue, _Mapping]] = ..., new_value: _Optional[_Union[ParameterValue, _Mapping]] = ..., key: _Optional[str] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., allowed: _Optional[str] = ..., rejection: _Optional[_Union[RejectionReason, str]] = ..., principal: _Optional[str] = ..., applied_while_paused: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ("key", "description", "unit", "value_type", "min", "max", "default_value", "current_value", "mutable", "step")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MUTABLE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    key: str
    description: str
    unit: str
    value_type: ValueType
    min: ParameterValue
    max: ParameterValue
    default_value: ParameterValue
    current_value: ParameterValue
    mutable: bool
    step: float
    def __init__(self, key: _Optional[str] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ..., value_type: _Optional[_Union[ValueType, str]] = ..., min: _Optional[_Union[ParameterValue, _Mapping]] = ..., max: _Optional[_Union[ParameterValue, _Mapping]] = ..., default_value: _Optional[_Union[ParameterValue, _Mapping]] = ..., current_value: _Optional[_Union[ParameterValue, _Mapping]] = ..., mutable: _Optional[bool] = ..., step: _Optional[float] = ...) -> None: ...

class WatchtowerSnapshot(_message.Message):
    __slots__ = ("tick", "captured_at_unix_ms", "macro", "agents", "government", "engine", "parameters", "audit", "run_id", "state_digest")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParameterValue, _Mapping]] = ...) -> None: ...
    TICK_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MACRO_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    GOVERNMENT_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    tick: int
    captured_at_unix_ms: int
    macro: MacroIndicators
    agents: AgentStatistics
    government: GovernmentIndicators
    engine: EngineStatistics
    parameters: _containers.MessageMap[str, ParameterValue]
    audit: AuditSummary
    run_id: str
    state_digest: int
    def __init__(self, tick: _Optional[int] = ..., captured_at_unix_ms: _Optional[int] = ..., macro: _Optional[_Union[MacroIndicators, _Mapping]] = ..., agents: _Optional[_Union[AgentStatistics, _Mapping]] = ..., government: _Optional[_Union[GovernmentIndicators, _Mapping]] = ..., engine: _Optional[_Union[EngineStatistics, _Mapping]] = ..., parameters: _Optional[_Mapping[str, ParameterValue]] = ..., audit: _Optional[_Union[AuditSummary, _Mapping]] = ..., run_id: _Optional[str] = ..., state_digest: _Optional[int] = ...) -> None: ...

class MacroIndicators(_message.Message):
    __slots__ = ("nominal_gdp", "real_gdp", "real_gdp_growth", "price_level", "inflation", "unemployment_rate", "average_wage", "money_supply", "bank_loans", "household_consumption", "new_lending", "inflation_12_tick")
    NOMINAL_GDP_FIELD_NUMBER: _ClassVar[int]
    REAL_GDP_FIELD_NUMBER: _ClassVar[int]
    REAL_GDP_GROWTH_FIELD_NUMBER: _ClassVar[int]
    PRICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    INFLATION_FIELD_NUMBER: _ClassVar[int]
    UNEMPLOYMENT_RATE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_WAGE_FIELD_NUMBER: _ClassVar[int]
    MONEY_SUPPLY_FIELD_NUMBER: _ClassVar[int]
    BANK_LOANS_FIELD_NUMBER: _ClassVar[int]
    HOUSEHOLD_CONSUMPTION_FIELD_NUMBER: _ClassVar[int]
    NEW_LENDING_FIELD_NUMBER: _ClassVar[int]
    INFLATION_12_TICK_FIELD_NUMBER: _ClassVar[int]
    nominal_gdp: float
    real_gdp: float
    real_gdp_growth: float
    price_level: float
    inflation: float
    unemployment_rate: float
    average_wage: float
    money_supply: float
    bank_loans: float
    household_consumption: float
    new_lending: float
    inflation_12_tick: float
    def __init__(self, nominal_gdp: _Optional[float] = ..., real_gdp: _Optional[float] = ..., real_gdp_growth: _Optional[float] = ..., price_level: _Optional[float] = ..., inflation: _Optional[float] = ..., unemployment_rate: _Optional[float] = ..., average_wage: _Optional[float] = ..., money_supply: _Optional[float] = ..., bank_loans: _Optional[float] = ..., household_consumption: _Optional[float] = ..., new_lending: _Optional[float] = ..., inflation_12_tick: _Optional[float] = ...) -> None: ...

class AgentStatistics(_message.Message):
    __slots__ = ("households", "employed", "firms", "bankruptcies", "bankruptcies_total", "wealth_gini", "income_gini", "wealth_p10", "wealth_p50", "wealth_p90", "wealth_p99", "unemployed_consumption", "inventories")
    HOUSEHOLDS_FIELD_NUMBER: _ClassVar[int]
    EMPLOYED_FIELD_NUMBER: _ClassVar[int]
    FIRMS_FIELD_NUMBER: _ClassVar[int]
    BANKRUPTCIES_FIELD_NUMBER: _ClassVar[int]
    BANKRUPTCIES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WEALTH_GINI_FIELD_NUMBER: _ClassVar[int]
    INCOME_GINI_FIELD_NUMBER: _ClassVar[int]
    WEALTH_P10_FIELD_NUMBER: _ClassVar[int]
    WEALTH_P50_FIELD_NUMBER: _ClassVar[int]
    WEALTH_P90_FIELD_NUMBER: _ClassVar[int]
    WEALTH_P99_FIELD_NUMBER: _ClassVar[int]
    UNEMPLOYED_CONSUMPTION_FIELD_NUMBER: _ClassVar[int]
    INVENTORIES_FIELD_NUMBER: _ClassVar[int]
    households: int
    employed: int
    firms: int
    bankruptcies: int
    bankruptcies_total: int
    wealth_gini: float
    income_gini: float
    wealth_p10: float
    wealth_p50: float
    wealth_p90: float
    wealth_p99: float
    unemployed_consumption: float
    inventories: float
    def __init__(self, households: _Optional[int] = ..., employed: _Optional[int] = ..., firms: _Optional[int] = ..., bankruptcies: _Optional[int] = ..., bankruptcies_total: _Optional[int] = ..., wealth_gini: _Optional[float] = ..., income_gini: _Optional[float] = ..., wealth_p10: _Optional[float] = ..., wealth_p50: _Optional[float] = ..., wealth_p90: _Optional[float] = ..., wealth_p99: _Optional[float] = ..., unemployed_consumption: _Optional[float] = ..., inventories: _Optional[float] = ...) -> None: ...

class GovernmentIndicators(_message.Message):
    __slots__ = ("tax_revenue", "spending", "deficit", "debt", "policy_rate", "transfers", "income_tax", "corporate_tax", "vat")
    TAX_REVENUE_FIELD_NUMBER: _ClassVar[int]
    SPENDING_FIELD_NUMBER: _ClassVar[int]
    DEFICIT_FIELD_NUMBER: _ClassVar[int]
    DEBT_FIELD_NUMBER: _ClassVar[int]
    POLICY_RATE_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    INCOME_TAX_FIELD_NUMBER: _ClassVar[int]
    CORPORATE_TAX_FIELD_NUMBER: _ClassVar[int]
    VAT_FIELD_NUMBER: _ClassVar[int]
    tax_revenue: float
    spending: float
    deficit: float
    debt: float
    policy_rate: float
    transfers: float
    income_tax: float
    corporate_tax: float
    vat: float
    def __init__(self, tax_revenue: _Optional[float] = ..., spending: _Optional[float] = ..., deficit: _Optional[float] = ..., debt: _Optional[float] = ..., policy_rate: _Optional[float] = ..., transfers: _Optional[float] = ..., income_tax: _Optional[float] = ..., corporate_tax: _Optional[float] = ..., vat: _Optional[float] = ...) -> None: ...

class EngineStatistics(_message.Message):
    __slots__ = ("measured_tps", "last_tick_duration_us", "queue_depth", "commands_applied", "commands_rejected", "target_tps", "seed", "run_state")
    MEASURED_TPS_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_DURATION_US_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    TARGET_TPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    measured_tps: float
    last_tick_duration_us: float
    queue_depth: int
    commands_applied: int
    commands_rejected: int
    target_tps: float
    seed: int
    run_state: RunState
    def __init__(self, measured_tps: _Optional[float] = ..., last_tick_duration_us: _Optional[float] = ..., queue_depth: _Optional[int] = ..., commands_applied: _Optional[int] = ..., commands_rejected: _Optional[int] = ..., target_tps: _Optional[float] = ..., seed: _Optional[int] = ..., run_state: _Optional[_Union[RunState, str]] = ...) -> None: ...

class AuditSummary(_message.Message):
    __slots__ = ("total", "recent")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    total: int
    recent: _containers.RepeatedCompositeFieldContainer[GodResponse]
    def __init__(self, total: _Optional[int] = ..., recent: _Optional[_Iterable[_Union[GodResponse, _Mapping]]] = ...) -> None: ...

class WebSocketClientMessage(_message.Message):
    __slots__ = ("command", "subscribe", "auth", "control", "commands", "list_parameters", "revert", "list_scheduled", "cancel_scheduled", "validate_only")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    LIST_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REVERT_FIELD_NUMBER: _ClassVar[int]
    LIST_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    command: GodCommand
    subscribe: WebSocketSubscribe
    auth: WebSocketAuth
    control: ControlEngineRequest
    commands: ApplyCommandsRequest
    list_parameters: ListParametersRequest
    revert: RevertCommandRequest
    list_scheduled: ListScheduledCommandsRequest
    cancel_scheduled: CancelScheduledCommandRequest
    validate_only: bool
    def __init__(self, command: _Optional[_Union[GodCommand, _Mapping]] = ..., subscribe: _Optional[_Union[WebSocketSubscribe, _Mapping]] = ..., auth: _Optional[_Union[WebSocketAuth, _Mapping]] = ..., control: _Optional[_Union[ControlEngineRequest, _Mapping]] = ..., commands: _Optional[_Union[ApplyCommandsRequest, _Mapping]] = ..., list_parameters: _Optional[_Union[ListParametersRequest, _Mapping]] = ..., revert: _Optional[_Union[RevertCommandRequest, _Mapping]] = ..., list_scheduled: _Optional[_Union[ListScheduledCommandsRequest, _Mapping]] = ..., cancel_scheduled: _Optional[_Union[CancelScheduledCommandRequest, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class WebSocketAuth(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class WebSocketSubscribe(_message.Message):
    __slots__ = ("interval_ms",)
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    interval_ms: int
    def __init__(self, interval_ms: _Optional[int] = ...) -> None: ...

class WebSocketServerMessage(_message.Message):
    __slots__ = ("response", "snapshot", "error", "session", "control", "commands", "parameters", "scheduled")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    response: GodResponse
    snapshot: WatchtowerSnapshot
    error: WebSocketError
    session: WhoAmIResponse
    control: ControlEngineResponse
    commands: ApplyCommandsResponse
    parameters: ListParametersResponse
    scheduled: ListScheduledCommandsResponse
    def __init__(self, response: _Optional[_Union[GodResponse, _Mapping]] = ..., snapshot: _Optional[_Union[WatchtowerSnapshot, _Mapping]] = ..., error: _Optional[_Union[WebSocketError, _Mapping]] = ..., session: _Optional[_Union[WhoAmIResponse, _Mapping]] = ..., control: _Optional[_Union[ControlEngineResponse, _Mapping]] = ..., commands: _Optional[_Union[ApplyCommandsResponse, _Mapping]] = ..., parameters: _Optional[_Union[ListParametersResponse, _Mapping]] = ..., scheduled: _Optional[_Union[ListScheduledCommandsResponse, _Mapping]] = ...) -> None: ...

class WebSocketError(_message.Message):
    __slots__ = ("code", "message", "command_id", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    command_id: str
    field: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., command_id: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...
