//! Hardware RAID controllers as storcli/perccli (`show all J`) and ssacli
//! (`ctrl all show config detail`) print them.
