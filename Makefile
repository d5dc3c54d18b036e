# Entry points. Everything real lives in scripts/.
.PHONY: test demo setup kernel ehost

## make test: the one test command (setup, builds, cargo test, emulated-host scenarios)
test:
	bash scripts/test.sh

## make demo: a critical VM and a normal VM side by side on an emulated host.
## Options: make demo GUEST_MEM=256M POOL=512M ALIGN=2M GUEST_CPUS=1 HOST_MEM=...
## (see scripts/demo.sh --help)
demo:
	bash scripts/demo.sh

setup:
	bash scripts/setup-toolchain.sh

kernel:
	bash scripts/build-kernel.sh

ehost:
	bash scripts/ehost build
