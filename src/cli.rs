//! Command-line interface: the commands, their flags and help text, and the only module that
//! knows clap (with `aws`, which owns the AWS flags it turns into an SDK configuration). Doc
//! comments here are the `--help` output. Values are checked for shape here, and each command's
//! arguments become its pipeline's plain, validated options (`backup::Options`,
//! `restore::Options`, …) before any work starts.

use crate::aws::AwsArgs;
use crate::backup_file::{names, read_groups_files};
use crate::location::Location;
use crate::selection::Selection;
use crate::shard::Shard;
use crate::{backup, create_pool, restore, verify};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cbr",
    version,
    about = "Back up and restore AWS Cognito user pools",
    long_about = "Back up and restore AWS Cognito user pools.\n\n\
        Credentials and region come from the AWS SDK's default chain (environment, shared \
        config and profiles, SSO, IMDS) unless given as flags."
)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// More log detail on stderr (-v debug and the AWS SDK's warnings, -vv trace of cbr's own
    /// steps)
    #[arg(short, long, action = clap::ArgAction::Count, global = true,
          help_heading = GLOBAL)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The heading of the flags every command takes, apart from each command's own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// List the user pools in the account and region
    List(ListArgs),
    /// Back up the users of a pool (or one shard of it) to a file
    Backup(BackupArgs),
    /// Restore users from backup files into a pool
    Restore(RestoreArgs),
    /// Check that backup files are whole and, given a pool, compare them with it
    Verify(VerifyArgs),
    /// Show what changed between two backups, or between a backup and a live pool
    Diff(DiffArgs),
    /// Print a shell completion script (e.g. `source <(cbr completions bash)`)
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text
    Text,
    /// JSON
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: text, one line per pool (`id: <id> name: <name>`); json, an array of
    /// {"id", "name"} objects
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// ID of the user pool to back up, e.g. us-east-1_AbCdEf123
    #[arg(short, long, value_name = "ID")]
    pub pool_id: String,

    /// Output file or S3 object (s3://bucket/path/backup.json); with --shard the index goes
    /// before the extension (backup-2.json)
    #[arg(short, long, default_value = "backup.json", value_name = "FILE")]
    pub out: Location,

    /// Back up only shard k of n (1-based), a deterministic slice of the pool by user sub
    #[arg(long, value_name = "k/n")]
    pub shard: Option<Shard>,

    /// ListUsers requests in flight at once (1 = one at a time, like the original)
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,

    /// Cap on ListUsers requests per second (default: the account's quota, 30 unless it bought
    /// more; shared by the account)
    #[arg(long, value_name = "N", value_parser = parse_rps)]
    pub max_rps: Option<f64>,

    /// No progress bar or progress lines
    #[arg(long)]
    pub no_progress: bool,

    /// Encrypt the data file with age to this public key (age1…); repeatable
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Vec<String>,

    /// Encrypt the data file to every public key in this file (one a line); repeatable
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,

    /// With an s3:// output: encrypt the objects with this KMS key (SSE-KMS; ID, ARN or
    /// alias) instead of S3's own keys (SSE-S3)
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,

    /// Continue a backup that stopped (killed, out of time, network gone): keep the sub
    /// prefixes it finished and list only the rest. Give the same pool, --out, --shard and
    /// encryption as the stopped run; its state is kept beside the output (.<file>.resume, in
    /// S3 for an s3:// output). Without a stopped backup there, a new one starts
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PasswordMode {
    /// Users who were CONFIRMED get a random permanent password nobody knows and stay
    /// CONFIRMED; they sign in again through "forgot password"
    Permanent,
    /// Every user gets a temporary password Cognito generates (FORCE_CHANGE_PASSWORD), as the
    /// original does; no message is sent unless --send-invitations
    Temporary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvitationMedium {
    /// By email, to users who have an email address
    Email,
    /// By SMS, to users who have a phone number
    Sms,
    /// By email and SMS, to each address the user has
    Both,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// ID of the user pool to restore into
    #[arg(
        short,
        long,
        value_name = "ID",
        required_unless_present = "create_pool",
        default_value = "",
        hide_default_value = true
    )]
    pub pool_id: String,

    /// Create a pool with this name from the backup's recorded configuration (settings,
    /// identity providers, resource servers, app clients with their secrets, domain, MFA),
    /// then restore into it; prints its id on stdout
    #[arg(long, value_name = "NAME", conflicts_with = "pool_id")]
    pub create_pool: Option<String>,

    /// With --create-pool: the domain prefix to give the new pool instead of the recorded one
    #[arg(long, value_name = "PREFIX")]
    pub domain_prefix: Option<String>,

    /// With --create-pool: write the old → new app client id map here (default:
    /// <input>.client-map.jsonl)
    #[arg(long, value_name = "FILE")]
    pub client_map: Option<PathBuf>,

    /// Backup files or S3 objects; several for a sharded backup (--in backup-*.json, or
    /// --in 's3://bucket/path/backup-*.json', expanded by listing the bucket)
    #[arg(short = 'i', long = "in", default_value = "backup.json", value_name = "FILE",
          num_args = 1..)]
    pub inputs: Vec<Location>,

    /// Check the files and the target pool, read the pool, and print the plan: what would be
    /// done to each user; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// How restored users get a password
    #[arg(long, value_enum, default_value_t = PasswordMode::Permanent)]
    pub password_mode: PasswordMode,

    /// Let Cognito send its invitation message to each created user (default: send nothing);
    /// needs --password-mode temporary
    #[arg(long)]
    pub send_invitations: bool,

    /// How invitations are sent with --send-invitations (Cognito's own default would be SMS)
    #[arg(long, value_enum, default_value_t = InvitationMedium::Email, requires = "send_invitations")]
    pub invitation_medium: InvitationMedium,

    /// Also put back users that exist in the pool in another state: attributes, enabled or
    /// disabled, group memberships, status where Cognito allows (default: report them)
    #[arg(long)]
    pub update_existing: bool,

    /// Restore only this user (repeatable)
    #[arg(long, value_name = "USERNAME")]
    pub user: Vec<String>,

    /// Restore only the users named in this file, one username a line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub users_from: Vec<PathBuf>,

    /// Restore only the users this ListUsers-style filter selects in the backup, e.g.
    /// 'email ^= "a"' or 'status = "Disabled"'
    #[arg(long, value_name = "FILTER", conflicts_with_all = ["user", "users_from"])]
    pub filter: Option<crate::selection::Filter>,

    /// Restore into a pool with Lambda triggers that creating users would run
    #[arg(long)]
    pub allow_triggers: bool,

    /// Format of the dry run's plan on stdout
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Restore even if a file's SHA-256 or user count no longer matches its manifest
    #[arg(long)]
    pub ignore_checksum: bool,

    /// Restore only the shards given, although their manifests show a set with more
    #[arg(long)]
    pub partial: bool,

    /// cognito-backup's groups file (default: <input stem>_groups.json beside an input, if
    /// there)
    #[arg(long, value_name = "FILE")]
    pub groups_file: Option<PathBuf>,

    /// age identity file (private key) to decrypt encrypted backups; repeatable
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// The target pool's old sub → new sub map, as JSON lines: read as proof of who is who,
    /// then kept and added to (default: <input>.sub-map.<pool id>.jsonl)
    #[arg(long, value_name = "FILE")]
    pub sub_map: Option<PathBuf>,

    /// Also write the summary as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Users being restored at once
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,

    /// Cap on requests per second in each Cognito quota category (default: the account's
    /// quotas)
    #[arg(long, value_name = "N", value_parser = parse_rps)]
    pub max_rps: Option<f64>,

    /// No progress bar or progress lines
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Backup files or S3 objects to check; for a sharded backup, any or all shards of the
    /// set ('s3://bucket/path/backup-*.json' is expanded by listing the bucket)
    #[arg(short = 'i', long = "in", default_value = "backup.json", value_name = "FILE",
          num_args = 1..)]
    pub inputs: Vec<Location>,

    /// Also compare with this live pool: users missing, extra, or with other attributes,
    /// state or groups
    #[arg(short, long, value_name = "ID")]
    pub pool_id: Option<String>,

    /// age identity file (private key) to decrypt encrypted backups; repeatable. Without it,
    /// an encrypted file is checked against its manifest's SHA-256 only
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// cognito-backup's groups file, to compare group settings (default:
    /// <input stem>_groups.json beside an input, if there)
    #[arg(long, value_name = "FILE")]
    pub groups_file: Option<PathBuf>,

    /// Output format of the result (on stdout)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Cap on ListUsers requests per second while reading the pool
    #[arg(long, value_name = "N", value_parser = parse_rps)]
    pub max_rps: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The backup to compare (the earlier one)
    #[arg(value_name = "A", required_unless_present = "inputs")]
    pub a: Option<Location>,

    /// With --pool-id: the files of the backup to compare, every shard of a set
    /// ('s3://bucket/path/backup-*.json' is expanded by listing the bucket)
    #[arg(short = 'i', long = "in", value_name = "FILE", num_args = 1..,
          conflicts_with = "a", requires = "pool_id")]
    pub inputs: Vec<Location>,

    /// The backup to compare it with; or give --pool-id to compare with the live pool
    #[arg(value_name = "B", required_unless_present = "pool_id")]
    pub b: Option<Location>,

    /// Compare with this live pool instead of a second backup
    #[arg(short, long, value_name = "ID", conflicts_with = "b")]
    pub pool_id: Option<String>,

    /// age identity file (private key) to decrypt encrypted backups; repeatable
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// Output format of the result (on stdout)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Cap on ListUsers requests per second while reading the pool
    #[arg(long, value_name = "N", value_parser = parse_rps)]
    pub max_rps: Option<f64>,
}

impl BackupArgs {
    pub fn options(&self, quiet: bool) -> backup::Options {
        backup::Options {
            pool_id: self.pool_id.clone(),
            out: self.out.clone(),
            shard: self.shard,
            concurrency: self.concurrency as usize,
            progress: !(quiet || self.no_progress),
            recipients: self.recipient.clone(),
            recipients_files: self.recipients_file.clone(),
            resume: self.resume,
        }
    }
}

impl RestoreArgs {
    /// The restore's options; `inputs` are the data files, expanded once.
    pub fn options(
        &self,
        inputs: Vec<Location>,
        region: &str,
        quiet: bool,
    ) -> Result<restore::Options> {
        if self.send_invitations && self.password_mode == PasswordMode::Permanent {
            bail!("--send-invitations needs --password-mode temporary");
        }
        let selection = Selection::new(&self.user, &self.users_from, self.filter.clone())?;
        let extra_groups = read_groups_files(&inputs, self.groups_file.as_deref())?
            .into_iter()
            .flat_map(|f| f.groups)
            .collect();
        Ok(restore::Options {
            pool_id: self.pool_id.clone(),
            region: region.to_string(),
            inputs,
            dry_run: self.dry_run,
            plan_json: self.output == OutputFormat::Json,
            password_mode: self.password_mode.into(),
            invitations: self
                .send_invitations
                .then_some(self.invitation_medium.into()),
            ignore_checksum: self.ignore_checksum,
            sub_map: self.sub_map.clone(),
            report: self.report.clone(),
            concurrency: self.concurrency as usize,
            progress: !(quiet || self.no_progress),
            update_existing: self.update_existing,
            allow_triggers: self.allow_triggers,
            selection,
            extra_groups,
        })
    }

    /// The options of `--create-pool`; `None` without it.
    pub fn create_pool_options(&self, inputs: &[Location]) -> Result<Option<create_pool::Options>> {
        let Some(name) = self.create_pool.clone() else {
            if self.domain_prefix.is_some() || self.client_map.is_some() {
                bail!("--domain-prefix and --client-map need --create-pool");
            }
            return Ok(None);
        };
        if name.trim().is_empty() {
            bail!("--create-pool needs a pool name");
        }
        let first = inputs.first().context("no input file")?;
        Ok(Some(create_pool::Options {
            name,
            inputs: inputs.to_vec(),
            domain_prefix: self.domain_prefix.clone(),
            client_map: self
                .client_map
                .clone()
                .unwrap_or_else(|| names::client_map_path(first)),
            dry_run: self.dry_run,
            ignore_checksum: self.ignore_checksum,
        }))
    }
}

impl VerifyArgs {
    /// The verify's options; `inputs` are the data files, expanded once.
    pub fn options(&self, inputs: Vec<Location>) -> verify::Options {
        verify::Options {
            inputs,
            pool_id: self.pool_id.clone(),
            groups_file: self.groups_file.clone(),
        }
    }
}

impl From<PasswordMode> for restore::PasswordMode {
    fn from(mode: PasswordMode) -> Self {
        match mode {
            PasswordMode::Permanent => restore::PasswordMode::Permanent,
            PasswordMode::Temporary => restore::PasswordMode::Temporary,
        }
    }
}

impl From<InvitationMedium> for restore::InvitationMedium {
    fn from(medium: InvitationMedium) -> Self {
        match medium {
            InvitationMedium::Email => restore::InvitationMedium::Email,
            InvitationMedium::Sms => restore::InvitationMedium::Sms,
            InvitationMedium::Both => restore::InvitationMedium::Both,
        }
    }
}

impl Cli {
    /// The command line of this process; a usage error exits 2 with clap's message.
    pub fn from_args() -> Cli {
        Cli::parse()
    }
}

impl CompletionsArgs {
    /// The completion script for the shell.
    pub fn write(&self, out: &mut dyn std::io::Write) {
        use clap::CommandFactory;
        clap_complete::generate(self.shell, &mut Cli::command(), "cbr", out);
    }
}

/// Writes the man pages, from the same definitions as `--help`, into `dir`: `cbr.1` and one
/// `cbr-<command>.1` per command (`cargo run --example man -- DIR`; the release archives carry
/// them).
pub fn man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)
}

fn parse_rps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.5 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate of at least 0.5 requests per second"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn original_flags_and_defaults() {
        let cli = Cli::try_parse_from(["cbr", "backup", "-p", "pool", "--shard", "2/3"]).unwrap();
        let Command::Backup(b) = cli.command else {
            panic!("backup")
        };
        assert_eq!(b.out, Location::Local(PathBuf::from("backup.json")));
        assert_eq!(b.shard, Some(Shard { index: 2, total: 3 }));
        let cli = Cli::try_parse_from(["cbr", "restore", "-p", "pool"]).unwrap();
        let Command::Restore(r) = cli.command else {
            panic!("restore")
        };
        assert_eq!(r.inputs, [Location::Local(PathBuf::from("backup.json"))]);
        assert_eq!(r.password_mode, PasswordMode::Permanent);
        assert!(!r.send_invitations);
    }

    #[test]
    fn global_flags_before_or_after_the_command() {
        let a = Cli::try_parse_from(["cbr", "--region", "eu-west-1", "-v", "list"]).unwrap();
        let b = Cli::try_parse_from(["cbr", "list", "--region", "eu-west-1", "-v"]).unwrap();
        assert_eq!(a.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(b.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!((a.verbose, b.verbose), (1, 1));
    }

    #[test]
    fn restore_needs_a_pool_id_or_create_pool_not_both() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["cbr", "restore"], args].concat());
        assert!(parse(&[]).is_err());
        assert!(parse(&["-p", "x", "--create-pool", "n"]).is_err());
        let Command::Restore(r) = parse(&["--create-pool", "n"]).unwrap().command else {
            panic!("restore")
        };
        assert_eq!(r.create_pool.as_deref(), Some("n"));
        assert_eq!(r.pool_id, "");
    }

    #[test]
    fn bad_shards_are_usage_errors() {
        for bad in ["0/3", "4/3", "a/b", "3"] {
            let err = Cli::try_parse_from(["cbr", "backup", "-p", "x", "--shard", bad]);
            assert!(err.is_err(), "{bad}");
        }
    }
}
