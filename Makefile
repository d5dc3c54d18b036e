# Entry points. Everything real lives in scripts/.
.PHONY: test demo bench setup kernel ehost

## make test: the one test command (setup, builds, cargo test, emulated-host scenarios)
test:
	bash scripts/test.sh

## make demo: a critical VM and a normal VM side by side on an emulated host.
## Options: make demo GUEST_MEM=256M POOL=512M ALIGN=2M GUEST_CPUS=1 HOST_MEM=...
## (see scripts/demo.sh --help)
demo:
	bash scripts/demo.sh

## make bench: memory benchmark, critical vs normal/prefault/hugetlbfs guests
## (scripts/bench --help; e.g. make bench BENCH_ARGS="--runs 3 --sizes 256M,1G")
bench:
	bash scripts/bench $(BENCH_ARGS)

setup:
	bash scripts/setup-toolchain.sh

kernel:
	bash scripts/build-kernel.sh

ehost:
	bash scripts/ehost build
