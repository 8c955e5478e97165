//! Feeds arbitrary bytes to the backup file reader: it must answer with records or an error,
//! never panic. The reader's modules are compiled in directly (not through the `cbr` crate) so
//! the fuzz build does not instrument and compile the whole AWS SDK.
#![no_main]

#[allow(dead_code)]
#[path = "../../../src/backup_file"]
mod backup_file {
    pub mod encoding;
    pub mod reader;
    pub mod record;
}

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut count = 0u64;
    let result = backup_file::reader::read_records(data, &mut |_, record| {
        assert!(!record.username.is_empty());
        count += 1;
        Ok(())
    });
    if let Ok(n) = result {
        assert_eq!(n, count);
    }
});
