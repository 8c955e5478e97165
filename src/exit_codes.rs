//! cbr's exit codes, and the one place that maps a command's outcome to one.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a dry run: the plan was made) |
//! | 1 | error: bad input, a failed check, a request that failed after its retries, I/O |
//! | 2 | usage error (clap's own) |
//! | 3 | finished, but a person must look: a restore with failed, conflicting or withheld users, or a verify or diff that found differences |
//! | 130 | interrupted (Ctrl-C or SIGTERM) |

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    Error,
    Incomplete,
    Interrupted,
}

impl ExitCode {
    /// A comparison (verify, diff): everything matched, or differences were found.
    pub fn of_comparison(matched: bool) -> ExitCode {
        if matched {
            ExitCode::Success
        } else {
            ExitCode::Incomplete
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(match code {
            ExitCode::Success => 0,
            ExitCode::Error => 1,
            ExitCode::Incomplete => 3,
            ExitCode::Interrupted => 130,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        assert_eq!(ExitCode::of_comparison(true), ExitCode::Success);
        assert_eq!(ExitCode::of_comparison(false), ExitCode::Incomplete);
        for (code, n) in [
            (ExitCode::Success, 0),
            (ExitCode::Error, 1),
            (ExitCode::Incomplete, 3),
            (ExitCode::Interrupted, 130),
        ] {
            assert_eq!(
                std::process::ExitCode::from(code),
                std::process::ExitCode::from(n)
            );
        }
    }
}
