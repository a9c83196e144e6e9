# Shortcuts for the two README commands and the build pieces behind them.
.PHONY: setup demo test msgs bench clean

setup:
	scripts/setup.sh

demo:
	scripts/run_demo.sh

test:
	scripts/run_tests.sh

msgs:
	scripts/build_msgs.sh
	scripts/build_fallback_msgs.sh

bench: setup
	. scripts/ros_env.sh && for b in bench/bench_*.py; do .venv/bin/python $$b || exit 1; done

clean:
	rm -rf build install log .pytest_cache demo_output
