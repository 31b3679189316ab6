#!/usr/bin/env bash
# canary-deploy.sh — an example deploy script that works with canary both ways.
#
# 1. As a hook that canary runs (hooks.<name>.command in canary-config.yaml):
#      hooks:
#        deploy:   { command: ["scripts/canary-deploy.sh", "hook", "deploy", "{image_tag}"], timeout: 10m }
#        rollback: { command: ["scripts/canary-deploy.sh", "hook", "rollback", "{image_tag}"] }
#    It runs $DEPLOY_COMMAND (your real deployment, e.g. "ansible-playbook deploy.yml -e tag=")
#    with the image tag appended, and its exit code tells canary whether it worked. canary puts the
#    upstream to deploy to in CANARY_CANARY_URL: after a promotion swaps the upstreams' roles
#    (upstreams.on_promotion: swap_roles), the next canary goes to the former production upstream.
#
# 2. As the driver, reporting to canary through its webhooks (with hooks.wait_for_webhooks: true):
#      scripts/canary-deploy.sh report started '{"image_tag":"v2.7.0"}'
#      scripts/canary-deploy.sh report health-check '{"passed":true}'
#      scripts/canary-deploy.sh report failed '{"reason":"migration failed"}'
#    or the whole flow at once:
#      scripts/canary-deploy.sh rollout v2.7.0
#
# 3. As a driver through the canary CLI: start a rollout, follow it to its end, and branch on how it ended
#    (canary runs this same script as its deploy hook in between):
#      scripts/canary-deploy.sh ship v2.7.0        # exit 0 promoted, 10 rolled back, 11 failed to deploy
#
# Environment: CANARY_SERVER, as the CLI reads it (default http://127.0.0.1:8000; CANARY_URL is read too,
# for scripts written before), DEPLOY_COMMAND (default: none, deploy is a no-op that says so),
# CANARY_HEALTH_URL (for `rollout`: the new version's health URL), CANARY_TOKEN (when the server has
# logins: sent as a bearer token), CANARY_CA_FILE (a private CA for an https:// server),
# CANARY_BIN (for `ship`: the canary binary, default `canary` on PATH),
# CANARY_START_PERCENT (for `ship`: the first share, default 5).
set -euo pipefail

CANARY_URL=${CANARY_SERVER:-${CANARY_URL:-http://127.0.0.1:8000}}

die() { echo "canary-deploy.sh: $*" >&2; exit 2; }

report() { # event [json]
  local event=$1 body=${2:-"{}"}
  local auth=() tls=()
  if [[ -n ${CANARY_TOKEN:-} ]]; then auth=(-H "authorization: Bearer $CANARY_TOKEN"); fi
  if [[ -n ${CANARY_CA_FILE:-} ]]; then tls=(--cacert "$CANARY_CA_FILE"); fi
  curl -sS --fail-with-body "${auth[@]}" "${tls[@]}" -X POST -H 'content-type: application/json' \
    --data "$body" "$CANARY_URL/admin/canary/webhook/$event"
  echo
}

run_deploy() { # hook-name image-tag
  local hook=$1 tag=$2
  if [[ -z ${DEPLOY_COMMAND:-} ]]; then
    echo "$hook $tag: no DEPLOY_COMMAND set; nothing to do"
    return 0
  fi
  echo "$hook $tag on ${CANARY_CANARY_URL:-the canary upstream}: running $DEPLOY_COMMAND $tag"
  # shellcheck disable=SC2086 # DEPLOY_COMMAND is a command line on purpose
  $DEPLOY_COMMAND "$tag"
}

case ${1:-} in
  hook)
    [[ $# -eq 3 ]] || die "usage: canary-deploy.sh hook <deploy|promote|rollback> <image_tag>"
    run_deploy "$2" "$3"
    ;;
  report)
    [[ $# -ge 2 ]] || die "usage: canary-deploy.sh report <started|health-check|traffic-updated|failed> [json]"
    report "$2" "${3:-}"
    ;;
  rollout)
    [[ $# -eq 2 ]] || die "usage: canary-deploy.sh rollout <image_tag>"
    tag=$2
    if ! run_deploy deploy "$tag"; then
      report failed "{\"reason\":\"deploy of $tag failed\"}"
      exit 1
    fi
    report started "{\"image_tag\":\"$tag\"}"
    if [[ -n ${CANARY_HEALTH_URL:-} ]] && ! curl -sSf -o /dev/null "$CANARY_HEALTH_URL"; then
      report health-check '{"passed":false,"detail":"health URL did not answer 2xx"}'
      exit 1
    fi
    report health-check '{"passed":true,"detail":"checked by canary-deploy.sh"}'
    ;;
  ship)
    [[ $# -eq 2 ]] || die "usage: canary-deploy.sh ship <image_tag>"
    tag=$2
    set +e
    CANARY_SERVER=$CANARY_URL "${CANARY_BIN:-canary}" start --image-tag "$tag" \
      --percent "${CANARY_START_PERCENT:-5}" --wait
    code=$?
    set -e
    case $code in
      0) echo "canary-deploy.sh: $tag is production now" ;;
      10) echo "canary-deploy.sh: $tag was rolled back; \`canary audit --limit 5\` says why" >&2 ;;
      11) echo "canary-deploy.sh: $tag never got traffic: its deploy or health check failed" >&2 ;;
      *) echo "canary-deploy.sh: canary exited with $code" >&2 ;;
    esac
    exit "$code"
    ;;
  *)
    die "usage: canary-deploy.sh <hook|report|rollout|ship> ... (see the comments at the top)"
    ;;
esac
