//! `GlobalRegistry`: every tunable parameter of the economy, typed and
//! range-checked (spec §2.1, §4.1).
//!
//! The schema and the defaults come from one file, the embedded
//! `economy_params.yaml`; a `--params` override file and god-mode commands both
//! go through [`GlobalRegistry::set`], so one validation path guards every
//! value. The registry lives on the engine thread and is only touched there:
//! phases read it each tick through [`ParamId`] handles and cache nothing.

use std::{collections::BTreeMap, collections::HashMap, fmt};

use serde::Deserialize;

use crate::pb;

/// The embedded default parameter file.
pub const DEFAULT_PARAMS_YAML: &str = include_str!("economy_params.yaml");

/// A typed parameter value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize)]
pub enum Value {
    /// A real number; never NaN or infinite.
    Number(f64),
    /// A whole number.
    Integer(i64),
    /// A switch.
    Flag(bool),
}

impl Value {
    fn value_type(self) -> ValueType {
        match self {
            Value::Number(_) => ValueType::Number,
            Value::Integer(_) => ValueType::Integer,
            Value::Flag(_) => ValueType::Flag,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x}"),
            Value::Integer(x) => write!(f, "{x}"),
            Value::Flag(x) => write!(f, "{x}"),
        }
    }
}

impl From<Value> for pb::ParameterValue {
    fn from(value: Value) -> Self {
        use pb::parameter_value::Kind;
        let kind = match value {
            Value::Number(x) => Kind::Number(x),
            Value::Integer(x) => Kind::Integer(x),
            Value::Flag(x) => Kind::Flag(x),
        };
        pb::ParameterValue { kind: Some(kind) }
    }
}

/// Converts a wire value; `None` if no kind is set.
pub fn value_from_pb(value: &pb::ParameterValue) -> Option<Value> {
    use pb::parameter_value::Kind;
    value.kind.map(|kind| match kind {
        Kind::Number(x) => Value::Number(x),
        Kind::Integer(x) => Value::Integer(x),
        Kind::Flag(x) => Value::Flag(x),
    })
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// `f64`, set with `ParameterValue.number`.
    Number,
    /// `i64`, set with `ParameterValue.integer`.
    Integer,
    /// `bool`, set with `ParameterValue.flag`.
    Flag,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Number => "number",
            ValueType::Integer => "integer",
            ValueType::Flag => "flag",
        })
    }
}

impl From<ValueType> for pb::ValueType {
    fn from(t: ValueType) -> Self {
        match t {
            ValueType::Number => pb::ValueType::Number,
            ValueType::Integer => pb::ValueType::Integer,
            ValueType::Flag => pb::ValueType::Flag,
        }
    }
}

/// The fixed description of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Namespaced key, such as `fiscal.income_tax_rate`.
    pub key: String,
    /// The value type every update must match.
    pub value_type: ValueType,
    /// Inclusive lower bound (absent for flags).
    pub min: Option<Value>,
    /// Inclusive upper bound (absent for flags).
    pub max: Option<Value>,
    /// The value in the embedded defaults.
    pub default: Value,
    /// Suggested UI step.
    pub step: f64,
    /// Unit of the value.
    pub unit: String,
    /// What it does in the model.
    pub description: String,
    /// False if fixed at start-up.
    pub mutable: bool,
}

impl ParamSpec {
    /// What the parameter accepts, in words: "number in [0, 0.9]".
    pub fn allowed(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("{} in [{min}, {max}]", self.value_type),
            _ => self.value_type.to_string(),
        }
    }

    fn check(&self, value: Value) -> Result<Value, Rejection> {
        if value.value_type() != self.value_type {
            return Err(Rejection::WrongType {
                key: self.key.clone(),
                expected: self.value_type,
                got: value.value_type(),
            });
        }
        if let Value::Number(x) = value
            && !x.is_finite()
        {
            return Err(Rejection::NotFinite {
                key: self.key.clone(),
                value: x,
            });
        }
        let below = match (value, self.min) {
            (Value::Number(x), Some(Value::Number(min))) => x < min,
            (Value::Integer(x), Some(Value::Integer(min))) => x < min,
            _ => false,
        };
        let above = match (value, self.max) {
            (Value::Number(x), Some(Value::Number(max))) => x > max,
            (Value::Integer(x), Some(Value::Integer(max))) => x > max,
            _ => false,
        };
        if below || above {
            return Err(Rejection::OutOfRange {
                key: self.key.clone(),
                value,
                allowed: self.allowed(),
            });
        }
        Ok(value)
    }
}

/// Why the registry refused a value. Every variant names the key, and the
/// message says what was allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// No parameter has this key.
    #[error("unknown parameter key {key:?}; allowed: one of: {}", known.join(", "))]
    UnknownKey {
        /// The key given.
        key: String,
        /// Every key the registry knows.
        known: Vec<String>,
    },
    /// No value was given.
    #[error("no value given for {key:?}; expected a {expected}")]
    MissingValue {
        /// The parameter.
        key: String,
        /// Its type.
        expected: ValueType,
    },
    /// The value has the wrong type.
    #[error("{key:?} expects a value of type {expected}, got {got}")]
    WrongType {
        /// The parameter.
        key: String,
        /// Its type.
        expected: ValueType,
        /// The type given.
        got: ValueType,
    },
    /// The value is NaN or infinite.
    #[error("{key:?} must be a finite number, not {value}")]
    NotFinite {
        /// The parameter.
        key: String,
        /// The value given.
        value: f64,
    },
    /// The value lies outside the range.
    #[error("{key:?} = {value} is out of range; allowed: {allowed}")]
    OutOfRange {
        /// The parameter.
        key: String,
        /// The value given.
        value: Value,
        /// The range, in words.
        allowed: String,
    },
    /// The parameter is structural.
    #[error("{key:?} is fixed at start-up and cannot be changed while the engine runs")]
    Immutable {
        /// The parameter.
        key: String,
    },
    /// Compare-and-set failed: the parameter holds another value than the
    /// one the command expected.
    #[error("{key:?} is {current}, not the expected {expected}; someone changed it first")]
    Conflict {
        /// The parameter.
        key: String,
        /// What the command expected.
        expected: Value,
        /// What the parameter holds.
        current: Value,
    },
}

impl Rejection {
    /// The request field at fault, as named in `ApplyCommandRequest`.
    pub fn field(&self) -> &'static str {
        match self {
            Rejection::UnknownKey { .. } | Rejection::Immutable { .. } => "command.key",
            Rejection::Conflict { .. } => "command.expected_value",
            _ => "command.value",
        }
    }

    /// What the faulty field allows, in words.
    pub fn allowed(&self, registry: &GlobalRegistry) -> String {
        match self {
            Rejection::UnknownKey { known, .. } => format!("one of: {}", known.join(", ")),
            Rejection::Immutable { .. } => "a mutable parameter key".to_owned(),
            Rejection::MissingValue { key, .. }
            | Rejection::WrongType { key, .. }
            | Rejection::NotFinite { key, .. } => registry
                .spec_by_key(key)
                .map(ParamSpec::allowed)
                .unwrap_or_default(),
            Rejection::OutOfRange { allowed, .. } => allowed.clone(),
            Rejection::Conflict { current, .. } => format!("the current value, {current}"),
        }
    }

    /// The wire code for this rejection.
    pub fn reason(&self) -> pb::RejectionReason {
        match self {
            Rejection::UnknownKey { .. } => pb::RejectionReason::UnknownKey,
            Rejection::MissingValue { .. } => pb::RejectionReason::MissingValue,
            Rejection::WrongType { .. } => pb::RejectionReason::WrongType,
            Rejection::NotFinite { .. } => pb::RejectionReason::NotFinite,
            Rejection::OutOfRange { .. } => pb::RejectionReason::OutOfRange,
            Rejection::Immutable { .. } => pb::RejectionReason::Immutable,
            Rejection::Conflict { .. } => pb::RejectionReason::Conflict,
        }
    }
}

/// Why a parameter file could not be loaded. Start-up stops on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// The file is not valid YAML of the expected shape.
    #[error("{source_name}: {message}")]
    Syntax {
        /// Which file.
        source_name: String,
        /// What the parser said.
        message: String,
    },
    /// A schema entry is inconsistent (for example, min above max).
    #[error("{source_name}: parameter {key:?}: {message}")]
    Schema {
        /// Which file.
        source_name: String,
        /// The parameter.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An override was refused by the same checks commands go through.
    #[error("{source_name}: {rejection}")]
    Rejected {
        /// Which file.
        source_name: String,
        /// The registry's verdict.
        rejection: Rejection,
    },
}

/// A cheap, typed handle to one parameter, resolved once when a phase is
/// built. Reading through it is an index, so phases can read the live value
/// every tick instead of caching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ParamId(usize);

/// The live parameter values and their schema.
#[derive(Debug, Clone)]
pub struct GlobalRegistry {
    specs: Vec<ParamSpec>,
    values: Vec<Value>,
    index: HashMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(rename = "type")]
    value_type: ValueType,
    default: serde_norway::Value,
    min: Option<serde_norway::Value>,
    max: Option<serde_norway::Value>,
    step: Option<f64>,
    unit: String,
    #[serde(default = "yes")]
    mutable: bool,
    description: String,
}

fn yes() -> bool {
    true
}

/// Reads a YAML scalar as a value of type `want`. An integral literal is
/// accepted for a number parameter, since YAML writes `0` and `0.0` alike;
/// every other mismatch is left for [`ParamSpec::check`] to reject.
fn yaml_value(yaml: &serde_norway::Value, want: ValueType) -> Option<Value> {
    use serde_norway::Value as Y;
    match yaml {
        Y::Bool(b) => Some(Value::Flag(*b)),
        Y::Number(n) => match (want, n.as_i64()) {
            (ValueType::Integer, Some(i)) => Some(Value::Integer(i)),
            (ValueType::Flag, Some(i)) => Some(Value::Integer(i)),
            _ => n.as_f64().map(Value::Number),
        },
        _ => None,
    }
}

impl GlobalRegistry {
    /// Builds the registry from the embedded `economy_params.yaml`.
    pub fn with_defaults() -> Self {
        Self::from_schema_yaml(DEFAULT_PARAMS_YAML, "economy_params.yaml")
            .expect("the embedded economy_params.yaml is valid (checked by a unit test)")
    }

    /// Builds a registry from a schema file such as `economy_params.yaml`.
    pub fn from_schema_yaml(text: &str, source_name: &str) -> Result<Self, ParamsError> {
        let syntax = |message: String| ParamsError::Syntax {
            source_name: source_name.to_owned(),
            message,
        };
        let file: BTreeMap<String, SpecFile> =
            serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut registry = GlobalRegistry {
            specs: Vec::with_capacity(file.len()),
            values: Vec::with_capacity(file.len()),
            index: HashMap::with_capacity(file.len()),
        };
        for (key, entry) in file {
            let schema = |message: String| ParamsError::Schema {
                source_name: source_name.to_owned(),
                key: key.clone(),
                message,
            };
            let bound = |yaml: &Option<serde_norway::Value>, name: &str| match yaml {
                None if entry.value_type == ValueType::Flag => Ok(None),
                None => Err(schema(format!("needs a {name}"))),
                Some(y) => match yaml_value(y, entry.value_type) {
                    Some(v) if v.value_type() == entry.value_type => Ok(Some(v)),
                    _ => Err(schema(format!("{name} must be a {}", entry.value_type))),
                },
            };
            let min = bound(&entry.min, "min")?;
            let max = bound(&entry.max, "max")?;
            let ordered = match (min, max) {
                (Some(Value::Number(a)), Some(Value::Number(b))) => a <= b,
                (Some(Value::Integer(a)), Some(Value::Integer(b))) => a <= b,
                _ => true,
            };
            if !ordered {
                return Err(schema(format!("min {min:?} is above max {max:?}")));
            }
            let default = yaml_value(&entry.default, entry.value_type)
                .ok_or_else(|| schema(format!("default must be a {}", entry.value_type)))?;
            let spec = ParamSpec {
                key: key.clone(),
                value_type: entry.value_type,
                min,
                max,
                default,
                step: entry.step.unwrap_or(match entry.value_type {
                    ValueType::Integer | ValueType::Flag => 1.0,
                    ValueType::Number => 0.01,
                }),
                unit: entry.unit,
                description: entry.description,
                mutable: entry.mutable,
            };
            let default = spec
                .check(default)
                .map_err(|rejection| ParamsError::Rejected {
                    source_name: source_name.to_owned(),
                    rejection,
                })?;
            registry.index.insert(key, registry.specs.len());
            registry.specs.push(spec);
            registry.values.push(default);
        }
        Ok(registry)
    }

    /// Applies a `key: value` override file, checking each value exactly as a
    /// command is checked. Structural parameters may be set here, since the
    /// engine has not started yet.
    pub fn apply_overrides_yaml(
        &mut self,
        text: &str,
        source_name: &str,
    ) -> Result<(), ParamsError> {
        let file: BTreeMap<String, serde_norway::Value> =
            serde_norway::from_str(text).map_err(|e| ParamsError::Syntax {
                source_name: source_name.to_owned(),
                message: e.to_string(),
            })?;
        for (key, yaml) in file {
            let want = self.spec_by_key(&key).map(|s| s.value_type);
            let value = want.and_then(|want| yaml_value(&yaml, want));
            let result = match (want, value) {
                (Some(_), None) => Err(ParamsError::Syntax {
                    source_name: source_name.to_owned(),
                    message: format!("{key:?}: expected a scalar value, found {yaml:?}"),
                }),
                _ => self
                    .set_inner(&key, value, true)
                    .map(drop)
                    .map_err(|rejection| ParamsError::Rejected {
                        source_name: source_name.to_owned(),
                        rejection,
                    }),
            };
            result?;
        }
        Ok(())
    }

    /// Sets `key` to `value` if the registry accepts it, returning the old
    /// and new values. A refused value changes nothing.
    pub fn set(&mut self, key: &str, value: Option<Value>) -> Result<(Value, Value), Rejection> {
        self.set_inner(key, value, false)
    }

    /// Compare-and-set: like [`GlobalRegistry::set`], but refused with
    /// [`Rejection::Conflict`] unless the parameter holds `expected` (when
    /// given). An invalid value is refused as such first.
    pub fn set_if(
        &mut self,
        key: &str,
        value: Option<Value>,
        expected: Option<Value>,
    ) -> Result<(Value, Value), Rejection> {
        let (old, new) = self.set(key, value)?;
        match expected {
            Some(expected) if expected != old => {
                self.set_inner(key, Some(old), true)?;
                Err(Rejection::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: old,
                })
            }
            _ => Ok((old, new)),
        }
    }

    fn set_inner(
        &mut self,
        key: &str,
        value: Option<Value>,
        at_startup: bool,
    ) -> Result<(Value, Value), Rejection> {
        let Some(&i) = self.index.get(key) else {
            return Err(Rejection::UnknownKey {
                key: key.to_owned(),
                known: self.specs.iter().map(|s| s.key.clone()).collect(),
            });
        };
        let spec = &self.specs[i];
        if !spec.mutable && !at_startup {
            return Err(Rejection::Immutable {
                key: key.to_owned(),
            });
        }
        let value = value.ok_or_else(|| Rejection::MissingValue {
            key: key.to_owned(),
            expected: spec.value_type,
        })?;
        let new = spec.check(value)?;
        let old = std::mem::replace(&mut self.values[i], new);
        Ok((old, new))
    }

    /// Resolves `key` to a handle, checking its type. Phases call this once,
    /// when they are built.
    pub fn id(&self, key: &str, value_type: ValueType) -> Result<ParamId, Rejection> {
        let &i = self.index.get(key).ok_or_else(|| Rejection::UnknownKey {
            key: key.to_owned(),
            known: self.specs.iter().map(|s| s.key.clone()).collect(),
        })?;
        let spec = &self.specs[i];
        if spec.value_type != value_type {
            return Err(Rejection::WrongType {
                key: key.to_owned(),
                expected: spec.value_type,
                got: value_type,
            });
        }
        Ok(ParamId(i))
    }

    /// The current value behind `id`.
    pub fn get(&self, id: ParamId) -> Value {
        self.values[id.0]
    }

    /// The current value of a number parameter (0 if `id` names another type).
    pub fn number(&self, id: ParamId) -> f64 {
        match self.values[id.0] {
            Value::Number(x) => x,
            _ => 0.0,
        }
    }

    /// The current value of an integer parameter (0 if `id` names another type).
    pub fn integer(&self, id: ParamId) -> i64 {
        match self.values[id.0] {
            Value::Integer(x) => x,
            _ => 0,
        }
    }

    /// The current value of a flag parameter (false if `id` names another type).
    pub fn flag(&self, id: ParamId) -> bool {
        matches!(self.values[id.0], Value::Flag(true))
    }

    /// The current value of `key`, if it exists.
    pub fn value_by_key(&self, key: &str) -> Option<Value> {
        self.index.get(key).map(|&i| self.values[i])
    }

    /// The schema entry of `key`, if it exists.
    pub fn spec_by_key(&self, key: &str) -> Option<&ParamSpec> {
        self.index.get(key).map(|&i| &self.specs[i])
    }

    /// Every parameter with its current value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamSpec, Value)> {
        self.specs.iter().zip(self.values.iter().copied())
    }

    /// The catalogue served by `ListParameters`, with current values.
    pub fn catalogue(&self) -> Vec<pb::ParameterSpec> {
        self.iter()
            .map(|(spec, current)| pb::ParameterSpec {
                key: spec.key.clone(),
                description: spec.description.clone(),
                unit: spec.unit.clone(),
                value_type: pb::ValueType::from(spec.value_type).into(),
                min: spec.min.map(Into::into),
                max: spec.max.map(Into::into),
                default_value: Some(spec.default.into()),
                current_value: Some(current.into()),
                mutable: spec.mutable,
                step: spec.step,
            })
            .collect()
    }

    /// Every value, in key order: what a checkpoint and the digest hold.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Puts back values taken with [`GlobalRegistry::values`] (a checkpoint),
    /// refusing a list that does not fit this schema.
    pub fn restore_values(&mut self, values: Vec<Value>) -> Result<(), String> {
        let fits = values.len() == self.specs.len()
            && self
                .specs
                .iter()
                .zip(&values)
                .all(|(spec, value)| spec.value_type == value.value_type());
        if !fits {
            return Err(format!(
                "{} values do not fit this registry of {} parameters",
                values.len(),
                self.specs.len()
            ));
        }
        self.values = values;
        Ok(())
    }

    /// Sets `key` as a `--params` file would, structural parameters
    /// included: for rebuilding a recorded run's start from its manifest.
    pub fn set_at_startup(&mut self, key: &str, value: Value) -> Result<(), Rejection> {
        self.set_inner(key, Some(value), true).map(drop)
    }

    /// Current values as the snapshot's `parameters` map.
    pub fn values_pb(&self) -> HashMap<String, pb::ParameterValue> {
        self.iter()
            .map(|(spec, value)| (spec.key.clone(), value.into()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load() {
        let registry = GlobalRegistry::with_defaults();
        let key = "fiscal.income_tax_rate";
        assert!(matches!(registry.value_by_key(key), Some(Value::Number(_))));
        assert_eq!(registry.catalogue().len(), registry.values.len());
    }

    #[test]
    fn a_valid_command_changes_the_value() {
        let mut r = GlobalRegistry::with_defaults();
        let (old, new) = r.set("fiscal.vat_rate", Some(Value::Number(0.2))).unwrap();
        assert_eq!(old, Value::Number(0.10));
        assert_eq!(new, Value::Number(0.2));
        assert_eq!(r.value_by_key("fiscal.vat_rate"), Some(Value::Number(0.2)));
    }

    #[test]
    fn bad_commands_change_nothing() {
        let mut r = GlobalRegistry::with_defaults();
        let before = r.values.clone();
        let cases = [
            (
                "nope",
                Some(Value::Number(1.0)),
                pb::RejectionReason::UnknownKey,
            ),
            ("fiscal.vat_rate", None, pb::RejectionReason::MissingValue),
            (
                "fiscal.vat_rate",
                Some(Value::Integer(0)),
                pb::RejectionReason::WrongType,
            ),
            (
                "fiscal.vat_rate",
                Some(Value::Number(f64::NAN)),
                pb::RejectionReason::NotFinite,
            ),
            (
                "fiscal.vat_rate",
                Some(Value::Number(f64::INFINITY)),
                pb::RejectionReason::NotFinite,
            ),
            (
                "fiscal.vat_rate",
                Some(Value::Number(0.51)),
                pb::RejectionReason::OutOfRange,
            ),
            (
                "fiscal.vat_rate",
                Some(Value::Number(-0.01)),
                pb::RejectionReason::OutOfRange,
            ),
            (
                "agents.households",
                Some(Value::Integer(20)),
                pb::RejectionReason::Immutable,
            ),
        ];
        for (key, value, reason) in cases {
            let err = r.set(key, value).unwrap_err();
            assert_eq!(err.reason(), reason, "{key} {value:?}: {err}");
        }
        assert_eq!(r.values, before);
    }

    #[test]
    fn an_out_of_range_message_names_key_value_and_range() {
        let mut r = GlobalRegistry::with_defaults();
        let err = r
            .set("fiscal.vat_rate", Some(Value::Number(0.9)))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("fiscal.vat_rate") && text.contains("0.9"),
            "{text}"
        );
        assert!(text.contains("[0, 0.5]"), "{text}");
        assert_eq!(err.field(), "command.value");
    }

    #[test]
    fn overrides_go_through_the_same_checks() {
        let mut r = GlobalRegistry::with_defaults();
        r.apply_overrides_yaml(
            "fiscal.vat_rate: 0.2\nagents.households: 500\nmonetary.policy_rate: 0\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            r.value_by_key("agents.households"),
            Some(Value::Integer(500))
        );
        assert_eq!(
            r.value_by_key("monetary.policy_rate"),
            Some(Value::Number(0.0))
        );
        let err = r
            .apply_overrides_yaml("fiscal.vat_rate: 3.0\n", "f")
            .unwrap_err();
        assert!(err.to_string().contains("fiscal.vat_rate"), "{err}");
        assert!(err.to_string().contains("[0, 0.5]"), "{err}");
        let err = r.apply_overrides_yaml("fiscal.nope: 1\n", "f").unwrap_err();
        assert!(err.to_string().contains("fiscal.nope"), "{err}");
    }
}
