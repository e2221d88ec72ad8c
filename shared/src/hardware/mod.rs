//! Parsers for the server's own management tools: the BMC over IPMI
//! (FreeIPMI, ipmitool) and hardware RAID controllers (storcli/perccli JSON,
//! ssacli text). Each parser is a pure function from the tool's output to
//! typed values, so it is tested on captured output and fuzzed.

pub mod ipmi;
pub mod raid;
