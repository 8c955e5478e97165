//! Where decided steps go: the workers (a restore that writes while it reads the pool), or a
//! plan file, an unnamed temporary file of compressed JSON lines (`packed`) read afterwards (a
//! dry run, or a restore that must see the whole plan before its first write).

use super::decide::{Action, Step};
use crate::packed::{LARGE_BLOCK, Lines, Packed};
use anyhow::{Context, Result, anyhow};
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
    out: Packed,
    pub creates: u64,
}

/// A finished plan, for [`for_each_step`].
pub type Plan = Lines;

impl PlanFile {
    pub fn new(dir: &Path) -> Result<PlanFile> {
        Ok(PlanFile {
            out: Packed::new(dir, LARGE_BLOCK).context("creating the plan")?,
            creates: 0,
        })
    }

    /// The plan, to be read from its start with [`for_each_step`].
    pub fn into_file(self) -> Result<Plan> {
        self.out.finish()
    }
}

impl Steps for PlanFile {
    fn push(&mut self, step: Step) -> Result<()> {
        self.creates += u64::from(step.action == Action::Create);
        self.out.push(&step)
    }
}

/// Calls `each` with every step of a plan file.
pub fn for_each_step(plan: Plan, each: impl FnMut(Step) -> Result<()>) -> Result<()> {
    plan.for_each(each).context("reading the plan")
}
