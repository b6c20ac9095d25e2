package exporter

import (
	"flag"
	"fmt"
	"os"
)

var testReadMode = flag.String("exporter.readmode", "auto",
	"read mode of every walk whose Config leaves it at auto: auto, classic or multiread (run the suite in each)")

// applyTestReadMode sets readModeOverride from -exporter.readmode; TestMain
// calls it once the flags are parsed.
func applyTestReadMode() {
	m, err := ParseReadMode(*testReadMode)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	readModeOverride = m
}
