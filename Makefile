# Entry points. Everything real lives in scripts/.
.PHONY: test demo setup kernel ehost

## make test: the one test command (setup, builds, cargo test, emulated-host scenarios)
test:
	bash scripts/test.sh

## make demo: a critical VM and a normal VM side by side (comes with the demo issue)
demo:
	@echo "make demo arrives with the demo issue; until then see 'make test'"; exit 1

setup:
	bash scripts/setup-toolchain.sh

kernel:
	bash scripts/build-kernel.sh

ehost:
	bash scripts/ehost build
