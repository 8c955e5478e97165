//! Where decided steps go: the workers (a restore that writes while it reads the pool), or a
//! plan file, an unnamed temporary file of JSON lines read afterwards (a dry run, or a restore
//! that must see the whole plan before its first write).

use super::decide::{Action, Step};
use anyhow::{Context, Result, anyhow};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// Where decided steps go.
pub trait Steps: Send + 'static {
    fn push(&mut self, step: Step) -> Result<()>;
}

impl Steps for tokio::sync::mpsc::Sender<Step> {
    fn push(&mut self, step: Step) -> Result<()> {
        self.blocking_send(step)
            .map_err(|_| anyhow!("restore stopped"))
    }
}

/// The plan in an unnamed temporary file, and how many users it creates.
pub struct PlanFile {
    out: BufWriter<File>,
    pub creates: u64,
}

impl PlanFile {
    pub fn new(dir: &Path) -> Result<PlanFile> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating the plan in {}", dir.display()))?;
        Ok(PlanFile {
            out: BufWriter::new(file),
            creates: 0,
        })
    }

    /// The file, rewound, for [`for_each_step`].
    pub fn into_file(self) -> Result<File> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

impl Steps for PlanFile {
    fn push(&mut self, step: Step) -> Result<()> {
        self.creates += u64::from(step.action == Action::Create);
        serde_json::to_writer(&mut self.out, &step)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }
}

/// Calls `each` with every step of a plan file.
pub fn for_each_step(file: File, mut each: impl FnMut(Step) -> Result<()>) -> Result<()> {
    for line in BufReader::new(file).lines() {
        each(serde_json::from_str(&line?).context("reading the plan")?)?;
    }
    Ok(())
}
