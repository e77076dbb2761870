#!/usr/bin/env bash
# Print the Binder link for this checkout's GitHub remote (default: origin), opening the
# quickstart notebook. The README carries no badge with a made-up owner: the repository's public
# address is whatever remote you publish it to.
#   bash scripts/binder_url.sh [REMOTE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
remote="${1:-origin}"
url="$(git remote get-url "$remote" 2>/dev/null)" || {
    echo "binder_url: no git remote '$remote': publish the repository on GitHub first" >&2
    exit 1
}
if [[ "$url" =~ github\.com[:/]([^/]+)/([^/]+)$ ]]; then
    echo "https://mybinder.org/v2/gh/${BASH_REMATCH[1]}/${BASH_REMATCH[2]%.git}/HEAD?urlpath=lab/tree/notebooks/01_quickstart.ipynb"
else
    echo "binder_url: remote '$remote' ($url) is not on GitHub; Binder also takes any git URL: https://mybinder.org/v2/git/<url-encoded URL>/HEAD" >&2
    exit 1
fi
