# microlend: the two commands a newcomer needs are `make run` and `make test`.
# Each installs what is missing (Debian packages), configures and builds first.
.PHONY: all deps build run test unit integration demo bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@scripts/build.sh

run: build
	@scripts/run.sh

test: build
	@scripts/test.sh

unit: build
	@scripts/test.sh -L unit

integration: build
	@scripts/test.sh -L integration

demo: build
	@scripts/demo.sh

bench: build
	@scripts/bench.sh

clean:
	rm -rf build
