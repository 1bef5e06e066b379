//! Errors of the operation model. Every one is caused by the request itself, so none of them
//! is worth retrying.

/// A chain that cannot be parsed or validated. Messages name the operation (by position and
/// name) and the offending argument, so a user can fix the request from the message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// The chain has no operations.
    #[error("empty operation chain")]
    EmptyChain,
    /// The chain has more operations than [`crate::MAX_CHAIN_LENGTH`].
    #[error("operation chain has {count} operations, at most {max} are allowed")]
    TooLong {
        /// operations given
        count: usize,
        /// the limit
        max: usize,
    },
    /// No operation of that name exists.
    #[error("operation {position}: unknown operation `{name}`")]
    UnknownOperation {
        /// 1-based position in the chain
        position: usize,
        /// the name as given
        name: String,
    },
    /// A required argument is missing.
    #[error("operation {position} `{op}`: missing argument `{arg}`")]
    MissingArgument {
        /// 1-based position in the chain
        position: usize,
        /// operation name
        op: &'static str,
        /// argument name
        arg: &'static str,
    },
    /// An argument has a value the operation does not accept.
    #[error("operation {position} `{op}`: bad {arg} `{value}`: {reason}")]
    BadArgument {
        /// 1-based position in the chain
        position: usize,
        /// operation name
        op: &'static str,
        /// argument name
        arg: &'static str,
        /// the value as given
        value: String,
        /// what is wrong with it
        reason: String,
    },
    /// More positional arguments than the operation takes.
    #[error("operation {position} `{op}`: takes at most {max} arguments, got {got}")]
    TooManyArguments {
        /// 1-based position in the chain
        position: usize,
        /// operation name
        op: &'static str,
        /// arguments given
        got: usize,
        /// arguments accepted
        max: usize,
    },
    /// A JSON operation object has a field the operation does not know.
    #[error("operation {position} `{op}`: unknown field `{field}`")]
    UnknownField {
        /// 1-based position in the chain
        position: usize,
        /// operation name
        op: &'static str,
        /// the field as given
        field: String,
    },
    /// An operation stands where it cannot work, such as `format` before the last step.
    #[error("operation {position} `{op}`: {reason}")]
    Misplaced {
        /// 1-based position in the chain
        position: usize,
        /// operation name
        op: &'static str,
        /// why it cannot stand there
        reason: &'static str,
    },
    /// The JSON form is not an array of operation objects.
    #[error("operation chain json: {0}")]
    Json(String),
    /// A chain names a preset (or a version of it) that is not known.
    #[error("operation {position}: unknown preset `{reference}`")]
    UnknownPreset {
        /// 1-based position in the chain
        position: usize,
        /// the step as written, canonically (`preset:name` or `preset:name:version`)
        reference: String,
    },
    /// A preset in configuration is malformed.
    #[error("preset `{name}`: {reason}")]
    BadPreset {
        /// the preset's name
        name: String,
        /// what is wrong
        reason: String,
    },
    /// The `presets` section of configuration is not a map.
    #[error("`presets` must be a map from preset name to {{version, ops, family}}")]
    PresetsNotAMap,
    /// A request option is malformed.
    #[error("option `{key}`: {reason}")]
    BadOption {
        /// the option name as given
        key: String,
        /// what is wrong
        reason: &'static str,
    },
}
