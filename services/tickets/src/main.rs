use clap::Parser;

// mimalloc, in every service on the request path: a ticket POST takes 9 % fewer
// instructions with it than with glibc's malloc, for ~8 MiB more peak RSS
// (docs/benchmarks.md, "Clones, threads and the allocator").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cfg = tix_tickets::Config::parse();
    let process = cfg.common.process();
    tix_common::service::main("tix-tickets", process, tix_tickets::build(cfg))
}
