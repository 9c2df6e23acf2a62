//! `glance-host build` / `up --build`: runs each component's `[component.ID.build]`
//! commands, like `spin build` (spinframework/spin crates/build): each command runs through
//! `sh -c` in the manifest directory, or in `workdir` relative to it; the first failure
//! stops the build.

use anyhow::{bail, Context as _, Result};

use crate::manifest::App;

/// Runs every component's build commands, in component-id order.
pub fn build(app: &App) -> Result<()> {
    let with_build: Vec<_> = app
        .components
        .values()
        .filter_map(|c| c.build.as_ref().map(|b| (c, b)))
        .collect();
    if with_build.is_empty() {
        println!("None of the components have a build command.");
        return Ok(());
    }
    for (component, build) in with_build {
        let dir = match &build.workdir {
            Some(w) => app.dir.join(w),
            None => app.dir.clone(),
        };
        for command in &build.commands {
            println!("Building component {} with `{command}`", component.id);
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&dir)
                .status()
                .with_context(|| {
                    format!(
                        "failed to run build command `{command}` for component `{}` in \"{}\"",
                        component.id,
                        dir.display()
                    )
                })?;
            if !status.success() {
                bail!(
                    "Build command for component {} failed with {status}: `{command}` (in \"{}\")",
                    component.id,
                    dir.display()
                );
            }
        }
    }
    println!("Finished building all Spin components");
    Ok(())
}
