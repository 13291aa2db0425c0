//! Mistakes in how a command was called that clap cannot see, each refused with exit code 2 and
//! the command that was meant.

use std::path::Path;

/// A usage mistake, said with the command that was meant.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `tandem start DIR`: start takes one file; a directory is `migrate`'s.
pub fn start_file(file: &Path) -> Result<(), UsageError> {
    if file.is_dir() {
        return Err(UsageError(format!(
            "{0} is a directory; `tandem start` takes one migration file. To apply a directory's pending migrations in order, run `tandem migrate {0}`",
            file.display()
        )));
    }
    Ok(())
}
