GO ?= go
BIN := $(CURDIR)/bin

.PHONY: build test test-race test-browser demo bench bench-infer bench-train proto lint fuzz sample-data clean

build:
	$(GO) build -o $(BIN)/ ./cmd/mpcnode ./cmd/mpcctl

## test: the whole default suite (unit, protocol, end-to-end with real mpcnode processes)
test:
	$(GO) test -count=1 -timeout 20m ./...

## test-race: the race detector on the node runtime, in unit tests and in
## end-to-end runs whose mpcnode binaries are built with -race
test-race:
	SYNOD_TEST_RACE=1 $(GO) test -count=1 -race -timeout 45m ./parties/... ./test/

## test-browser: the audit page (mpcctl audit serve) in headless Chromium,
## driven through chromedriver: needs Debian's chromium and chromium-driver
## (SYNOD_CHROMIUM and SYNOD_CHROMEDRIVER name others; SYNOD_BROWSER_SHOTS
## keeps the screenshots)
test-browser:
	$(GO) test -count=1 -tags browser -run 'InBrowser' -timeout 20m ./test/

demo:
	./scripts/demo.sh

## bench: setup time, query latency and bytes per party for N=3 and N=5 on
## loopback, each beside the raw in-process lattigo floor; the issue-4 query
## (3 parties × 10^6 rows, 60 cells: BenchmarkQueryMillionRows) end to end,
## with and without the ledger, at 10^5 and 10^6 rows; one party's
## filtering+encoding and CSV loading of 10^6 rows in process
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/ -v | tee bench.out
	$(GO) test -run '^$$' -bench . -benchtime 3x ./engine/ ./protocols/ && $(GO) test -run '^$$' -bench Commit -benchtime 40x ./ledger/
	$(GO) test -run '^$$' -bench MillionRows -benchtime 5x ./parties/query/ ./parties/datasource/

## bench-infer: private prediction, logistic regression with 30 features,
## 3 parties x 100,000 records, records/s beside the in-process floor
bench-infer:
	$(GO) test -run '^$$' -bench BenchmarkPrivatePrediction -benchtime 1x -timeout 30m ./test/ -v | grep -v 'level=' | tee bench-infer.out

## bench-train: exact linear and encrypted logistic regression, 3 parties x
## 100,000 rows x 30 features, end to end beside the in-process floor
bench-train:
	$(GO) test -run '^$$' -bench 'BenchmarkTrain' -benchtime 1x -timeout 60m ./test/ -v | grep -v 'level=' | tee bench-train.out

proto:
	protoc -I api --go_out=. --go_opt=module=github.com/synod-mpc/synod \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/synod-mpc/synod api/synod/v1/*.proto

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) vet -tags browser ./test/

## fuzz: every decoder's fuzz target for FUZZTIME each
FUZZTIME ?= 30s
FUZZ_PKGS := ./engine ./engine/model ./protocols ./parties/wire ./parties/keystore ./parties/datasource ./parties/node ./parties/query ./ledger ./ledger/records
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

sample-data:
	$(GO) run ./configs/sampledata -out configs/sample -parties 5 -rows 2000 -seed 2026

clean:
	rm -rf $(BIN) bench.out
