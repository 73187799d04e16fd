use clap::Parser;

// mimalloc: a ticket POST takes 9 % fewer instructions with it than with glibc's malloc
// (docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cfg = tix_gateway::Config::parse();
    let (workers, log) = (cfg.workers, cfg.log.clone());
    tix_common::service::main("tix-gateway", workers, &log, tix_gateway::build(cfg))
}
