//! BMC sensors, system event log, chassis status and identity, as FreeIPMI
//! (`ipmi-sensors`, `ipmi-sel`, `ipmi-chassis`, `bmc-info`) and ipmitool
//! (`sdr elist`, `sensor`, `sel elist`, `mc info`, `fru`, `lan print`) print them.
