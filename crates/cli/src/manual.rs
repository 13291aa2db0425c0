//! What a packager installs beside the binary: shell completions (`tandem completions SHELL`),
//! the man page (`tandem man`), both generated from the same clap definition as the flags, and
//! the version string naming the commit (`build.rs`).

use clap::CommandFactory;
use std::io::Write;

/// `tandem --version`: the crate's version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TANDEM_COMMIT"), ")");

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(shell: Shell) -> anyhow::Result<()> {
    let mut command = crate::cli::Args::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "tandem", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// The man page: tandem(1), then a section per subcommand with its synopsis, description and
/// flags as `--help` shows them, so `man tandem` holds everything.
pub fn man() -> anyhow::Result<()> {
    let command = crate::cli::Args::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub = sub.clone().bin_name(format!("tandem {}", sub.get_name()));
        let mut page = Vec::new();
        let man = clap_mangen::Man::new(sub.clone());
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        out.extend_from_slice(
            format!(".SH \"TANDEM {}\"\n", sub.get_name().to_uppercase()).as_bytes(),
        );
        // The subcommand's own section headers become subsections.
        out.extend_from_slice(
            String::from_utf8_lossy(&page)
                .replace(".SH ", ".SS ")
                .as_bytes(),
        );
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
