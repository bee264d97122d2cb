//! Why a module is refused, and the faults of the host itself.

/// Why a manifest's bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The encoding's version is not one this build reads.
    #[error("unknown manifest (or parameters) encoding version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("the manifest ends inside its {what} (at byte {at})")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where.
        at: usize,
    },
    /// A field's value is out of its range.
    #[error("the manifest's {field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes after the last field.
    #[error("{0} bytes after the manifest's last field")]
    Trailing(usize),
}

/// Why a module was refused when loaded: nothing of it ever runs on an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The module is larger than [`crate::limits::MAX_MODULE_BYTES`].
    #[error("the module has {size} bytes, at most {limit} are accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid module under the VM's rules (this is where float
    /// instructions, SIMD, a second memory and a start function are refused).
    #[error("the module is not valid WebAssembly under the VM's rules")]
    Invalid(#[source] wasmi::Error),
    /// An import the host does not offer, or offers with another type.
    #[error("the module imports `{module}.{name}`: {reason}")]
    Import {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A required export is missing, or an export has the wrong type.
    #[error("the module's export `{name}`: {reason}")]
    Export {
        /// The export.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A memory or table larger than the limits.
    #[error("the module's {what} is too large: {reason}")]
    Resource {
        /// `memory` or `table`.
        what: &'static str,
        /// The sizes.
        reason: String,
    },
    /// Instantiating the module failed (a data or element segment out of bounds, ...).
    #[error("the module cannot be instantiated")]
    Instantiate(#[source] wasmi::Error),
    /// `vc_manifest` trapped, ran out of fuel or rejected.
    #[error("the module's vc_manifest export failed: {code}: {reason}")]
    ManifestRun {
        /// The rejection code it would have had on an operation.
        code: &'static str,
        /// Details.
        reason: String,
    },
    /// `vc_manifest` wrote no valid manifest.
    #[error("the module's manifest is invalid")]
    Manifest(#[from] ManifestError),
    /// The manifest allows less memory than the module declares it starts with.
    #[error("the module starts with {declared} memory pages, its manifest allows {allowed}")]
    MemoryOverManifest {
        /// The module's initial pages.
        declared: u64,
        /// The manifest's limit.
        allowed: u32,
    },
    /// The module's hash is not the one a database expects.
    #[error("the module's SHA-256 is {found}, the database was made with {expected}")]
    WrongModule {
        /// The database's.
        expected: String,
        /// This module's.
        found: String,
    },
    /// Reading the module's file failed.
    #[error("reading the module {path}")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A fault of the host while running a hook: an invariant of the VM broke. Never caused by
/// what a module does (that is a rejection); the engine stops as on a store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmFault {
    /// The interpreter failed in a way no module behaviour explains.
    #[error("the interpreter failed in hook {hook}")]
    Interpreter {
        /// The hook's export.
        hook: &'static str,
        /// The failure.
        #[source]
        source: wasmi::Error,
    },
}
