#!/bin/sh
# The deploy hook of `canary demo`: canary runs it (hooks.deploy) with the
# image tag, like it runs a team's own deploy script. It does what a deploy
# script does, minus the real work: it says each stage, takes a moment, and
# its exit code tells canary whether the deployment worked.
#
# Try `canary demo` and start a canary with the image tag "broken-build" to
# see a failed deploy stop a rollout before it gets any traffic.
set -eu

tag=${1:?usage: demo-deploy.sh <image_tag>}

echo "building image app:${tag}"
sleep 1
if [ "$tag" = "broken-build" ]; then
  echo "build failed: tests did not pass" >&2
  exit 1
fi
echo "pushing app:${tag} to the registry"
sleep 1
echo "rolling out app:${tag} to the canary hosts"
sleep 1
echo "deployed app:${tag}"
