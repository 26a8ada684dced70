package calls

import (
	"os"
	"slices"
	"strings"
)

var osStat = os.Stat

func sortStats(s []PeerStats) {
	slices.SortFunc(s, func(a, b PeerStats) int { return strings.Compare(a.Device.String(), b.Device.String()) })
}
