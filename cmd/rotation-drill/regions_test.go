package main

import (
	"bytes"
	"testing"
)

// TestRegionOutageDrill: -replica-regions us-west-2 -region-outage runs
// with the secret's own region answering 503 throughout: exit 0, 0
// application errors, and the report counts the fetches each region
// served (the replica rotatingmysql's).
func TestRegionOutageDrill(t *testing.T) {
	rep, _ := runJSON(t, exitPass, "-replica-regions", "us-west-2", "-region-outage", "-duration", "2s", "-window", "500ms")
	if rm := driverTotal(t, rep, driverRotating); rm.Errors != 0 {
		t.Errorf("rotatingmysql: %d errors (%v), want 0", rm.Errors, rm.ErrorKinds)
	}
	if len(rep.Regions) != 2 {
		t.Fatalf("regions %+v, want us-east-1 and us-west-2", rep.Regions)
	}
	primary, west := rep.Regions[0], rep.Regions[1]
	if primary.Region != "us-east-1" || !primary.Down || primary.Answered != 1 {
		t.Errorf("primary %+v: want down, answering only the drill's first read", primary)
	}
	// Not every request to the replica is a success: AWSPENDING is
	// answered not found outside the rotation, and a request in flight
	// at the drill's end is cut.
	if west.Region != "us-west-2" || west.Answered == 0 {
		t.Errorf("replica %+v: want it to answer rotatingmysql's fetches", west)
	}
}

// TestRegionFlags: -region-outage needs -replica-regions, which needs the
// emulated drill with the API.
func TestRegionFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-region-outage"},
		{"-replica-regions", "us-west-2", "-source", "agent"},
		{"-replica-regions", "us-west-2,,eu-west-1"},
	} {
		var stderr bytes.Buffer
		if _, err := parseOptions(args, &stderr); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
