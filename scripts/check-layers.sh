#!/usr/bin/env bash
# scripts/check-layers.sh — fails when a file includes a header of a layer
# above its own, so the house stays as drawn in the README:
#
#   core < wire, sql < conf < route < io < session < ctl < app, tools < main.c
#
# A file in proxy/<layer>/ or include/<layer>/ may include headers of its own
# layer and of the layers below it. wire/ and sql/ share a floor and do not
# include each other; nor do app/ and tools/. Prints every offending line;
# exit 1 when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A rank=([core]=0 [wire]=1 [sql]=1 [conf]=2 [route]=3 [io]=4 [session]=5 [ctl]=6 [app]=7 [tools]=7)
bad=0
while IFS= read -r file; do
	layer=${file#proxy/}
	layer=${layer#include/}
	layer=${layer%%/*}
	if [[ $file == proxy/main.c ]]; then
		mine=8
		layer=main
	elif [[ -n ${rank[$layer]:-} ]]; then
		mine=${rank[$layer]}
	else
		echo "$file: not in a known layer (add it to scripts/check-layers.sh)"
		bad=1
		continue
	fi
	while IFS=: read -r line inc; do
		target=${inc#*\"}
		target=${target%%/*}
		[[ -z ${rank[$target]:-} ]] && continue
		theirs=${rank[$target]}
		if ((theirs > mine)) || { ((theirs == mine)) && [[ $target != "$layer" ]]; }; then
			echo "$file:$line: $layer/ includes ${inc#*\#include } from $target/, a layer above or beside it"
			bad=1
		fi
	done < <(grep -n '^#include "' "$file" | sed 's/^\([0-9]*\):/\1:/')
done < <(find proxy include -name '*.[ch]' | sort)
if ((bad)); then
	echo "layering check failed: see the order at the top of scripts/check-layers.sh"
	exit 1
fi
echo "layering check: ok"
