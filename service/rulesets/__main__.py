"""`python -m service.rulesets`: the ruleset authors' command line (service/decision_engine/ruleset_cli.py).

An entry point only: the commands need the whole load pipeline, which lives above this package."""
import sys

from service.decision_engine.ruleset_cli import main

sys.exit(main())
