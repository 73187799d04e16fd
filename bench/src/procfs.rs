//! What /proc says about a process, for the benches that report memory and CPU.
#![allow(dead_code)] // each bench binary includes this module and uses part of it

/// A process's peak resident set (`VmHWM`) in KiB; `None` where there is no /proc.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time a process (`"self"` for this one) has used so far, all its
/// threads, from `/proc/<pid>/stat` in clock ticks of 1/100 s (USER_HZ on Linux); `None`
/// where there is no /proc or the process is gone.
pub fn cpu_time(pid: &str) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}
