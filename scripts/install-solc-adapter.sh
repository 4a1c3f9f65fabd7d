#!/usr/bin/env bash
# Link ~/.svm/0.8.20/solc-0.8.20, the solc ezkl looks for, to the solc-js adapter, idempotently
# and offline (run by scripts/setup.sh after `npm install` in tools/).
#
# The link is global, so it must not point into a checkout: deleting the clone that ran set-up
# last would break every other. The adapter and the npm solc it requires (with solc's
# dependencies, as npm installed them in tools/) are copied to a folder of their own,
# ${XDG_DATA_HOME:-~/.local/share}/stakelearn/solc-0.8.20/, replaced only when the adapter or the
# lockfile changes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
adapter_home="${XDG_DATA_HOME:-$HOME/.local/share}/stakelearn/solc-0.8.20"
adapter_stamp="$(cat "$root/tools/solc-adapter.js" "$root/tools/package-lock.json" | sha256sum | cut -c1-16)"
if [ "$(cat "$adapter_home/.stakelearn-setup" 2>/dev/null)" != "$adapter_stamp" ]; then
  echo "setup: installing the solc adapter into $adapter_home" >&2
  mkdir -p "$(dirname "$adapter_home")"
  staging="$(mktemp -d "$adapter_home.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  chmod 755 "$staging"
  cp "$root/tools/solc-adapter.js" "$staging/"
  # solc and everything it requires, as npm resolved them in tools/package-lock.json.
  packages="$(node -e '
    const lock = require(process.argv[1]).packages, seen = new Set(), todo = ["solc"];
    while (todo.length) {
      const name = todo.pop();
      if (seen.has(name)) continue;
      seen.add(name);
      todo.push(...Object.keys((lock["node_modules/" + name] || {}).dependencies || {}));
    }
    console.log([...seen].join("\n"));' "$root/tools/package-lock.json")"
  for package in $packages; do
    mkdir -p "$staging/node_modules/$(dirname "$package")"
    cp -RL "$root/tools/node_modules/$package" "$staging/node_modules/$package"  # -L: no links back into tools/
  done
  node "$staging/solc-adapter.js" --version >/dev/null  # a broken copy never replaces a working one
  echo "$adapter_stamp" > "$staging/.stakelearn-setup"
  rm -rf "$adapter_home"
  mv "$staging" "$adapter_home"
  trap - EXIT
fi
# A native solc there (a file, or a link to anything but an adapter) is left alone.
svm_solc="$HOME/.svm/0.8.20/solc-0.8.20"
if [ ! -e "$svm_solc" ] || { [ -L "$svm_solc" ] && [ "$(basename "$(readlink "$svm_solc")")" = solc-adapter.js ]; }; then
  mkdir -p "$(dirname "$svm_solc")"
  ln -sfn "$adapter_home/solc-adapter.js" "$svm_solc"
fi
