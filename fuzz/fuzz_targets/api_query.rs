#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canary_server::fuzzing::api_query(data));
