#!/usr/bin/env bash
# A worked release from the shell (README, "A worked release from the shell"); tests/cli runs it.
# Needs the service at CREDIT_RULES_URL with RULES_API_TOKENS naming li.wei (publish+evaluate+approve),
# wang.fang (approve), zhao.min (audit) and core-banking (evaluate), their tokens in LI_TOKEN,
# WANG_TOKEN, ZHAO_TOKEN, CORE_TOKEN, and `credit-rules` on PATH. NEW is the document to release,
# CSV where the changed cases go.
set -euo pipefail
cd "$(dirname "$0")/../.."
NEW=${NEW:-rulesets/sme-credit-policy/1.1.0.yaml}
VERSION=${VERSION:-1.1.0}
as() { local token=$1; shift; CREDIT_RULES_TOKEN=$token credit-rules "$@"; }

# 1. li.wei runs the new version's own tests locally, then proposes it: it is stored as
#    `proposed` and never chosen by as_of; she can try it with a dry run (nothing logged).
as "$LI_TOKEN" test "$NEW"
as "$LI_TOKEN" publish "$NEW"
as "$LI_TOKEN" diff sme-credit-policy 1.0.0 "$VERSION"
as "$LI_TOKEN" decide docs/worked-release/application.json --version "$VERSION" --dry-run

# 2. Four eyes: her own approval is refused (403 self_approval, exit status 1); wang.fang approves.
if as "$LI_TOKEN" approve sme-credit-policy "$VERSION"; then echo "self-approval was accepted" >&2; exit 1; fi
as "$WANG_TOKEN" approve sme-credit-policy "$VERSION" -m "credit committee minutes 2026-12-01"

# 3. Shadow: callers keep getting the champion's answers; the log keeps the challenger's beside them.
as "$WANG_TOKEN" rollout sme-credit-policy --challenger "$VERSION" --mode shadow
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1
curl -sf "$CREDIT_RULES_URL/v1/decisions:batch" -H "Authorization: Bearer $CORE_TOKEN" \
     -H 'Content-Type: application/json' --data-binary @docs/worked-release/batch.json -o /dev/null

# 4. The report: decisions per arm, champion -> challenger matrix, the cases that differ and why.
as "$WANG_TOKEN" rollout sme-credit-policy --report --from "$since"

# 5. A backtest job over what was logged since, with its progress bar; the changed cases as CSV.
until=$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)
as "$ZHAO_TOKEN" impact sme-credit-policy --from 1.0.0 --to "$VERSION" \
   --logged-from "$since" --logged-to "$until" --csv "${CSV:-changes.csv}"
as "$WANG_TOKEN" rollout sme-credit-policy --end
