//! `tandem convert`: reads the SQL, hands it to `tandem_lint::convert`, writes the migration
//! file to standard output (or `--output`) and the notes that need a person to standard error.

use crate::cli::{ConvertArgs, ConvertFormat};
use anyhow::{Context, Result};

pub fn run(args: ConvertArgs, json: bool) -> Result<()> {
    let (file, source) = crate::lint::read_input(&args.file)?;
    let conversion = tandem_lint::convert::convert(&file, &source)?;
    let format = if json {
        ConvertFormat::Json
    } else {
        args.format
    };
    let text = match format {
        ConvertFormat::Yaml => conversion.to_yaml(),
        ConvertFormat::Json => conversion.to_json(),
    };
    for note in conversion.notes() {
        if note.kind.is_for_stderr() {
            eprintln!(
                "{file}:{}:{}: {}: {}",
                note.line,
                note.column,
                note.kind.label(),
                note.message
            );
        }
    }
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("{}: cannot write", path.display()))?,
        None => print!("{text}"),
    }
    if conversion.has_placeholders() {
        eprintln!("{file}: the migration has TODO placeholders to write; `tandem validate` refuses it until they are gone");
    }
    Ok(())
}
