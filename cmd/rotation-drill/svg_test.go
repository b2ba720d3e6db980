package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDrawnPartStopsAtShutdown checks the cut: the picture ends at the
// last full bucket before the drill began stopping its workers, with
// nothing of the shutdown after it.
func TestDrawnPartStopsAtShutdown(t *testing.T) {
	r := sampleReport() // 103 buckets, shutdown at 10.003 s
	r.Marks = append(r.Marks, Mark{Step: stepAfter, Rotation: 2, AtMS: 10200})
	r.Fleet = &FleetReport{}
	for i := range 12 {
		r.Fleet.Seconds = append(r.Fleet.Seconds, FleetSecond{AtS: float64(i) - 0.05})
	}
	d := drawnPart(r)
	if d.buckets != 100 || d.xmax != 10 {
		t.Errorf("%d buckets to %v s, want 100 to 10 s (the bucket holding the shutdown at 10.003 s left out)", d.buckets, d.xmax)
	}
	for _, m := range d.marks {
		if m.AtMS/1000 > d.xmax {
			t.Errorf("mark %s at %v ms drawn after the end at %v s", m.Step, m.AtMS, d.xmax)
		}
	}
	if len(d.marks) != len(r.Marks)-1 {
		t.Errorf("%d marks drawn, want %d", len(d.marks), len(r.Marks)-1)
	}
	if n := len(d.seconds); n != 10 || d.seconds[n-1].AtS+1 > d.xmax {
		t.Errorf("%d fleet seconds drawn, the last from %v s; want 10, ending by %v s", n, d.seconds[n-1].AtS, d.xmax)
	}

	r.ShutdownMS = 0 // a report without it: everything
	if d := drawnPart(r); d.buckets != 103 {
		t.Errorf("no shutdown time: %d buckets, want all 103", d.buckets)
	}
	r.ShutdownMS = 30 // stopped within the first bucket: one, not none
	if d := drawnPart(r); d.buckets != 1 {
		t.Errorf("shutdown at 30 ms: %d buckets, want 1", d.buckets)
	}
}

// svgTexts returns the text of every text element of the SVG at path.
func svgTexts(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	d := xml.NewDecoder(bytes.NewReader(data))
	in := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return texts
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			in = tok.Name.Local == "text"
		case xml.CharData:
			if in && strings.TrimSpace(string(tok)) != "" {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			in = false
		}
	}
}

// TestPictureWordsAndCut draws a report whose bucket after the shutdown
// holds far more queries than any before: the picture names the steps in
// words, carries each driver's totals in its title, and leaves that bucket
// out (no y axis tick reaches it).
func TestPictureWordsAndCut(t *testing.T) {
	r := sampleReport()
	for i := range r.Timeline.Series {
		r.Timeline.Series[i].Queries[101] = 5000 // 50,000/s, after the shutdown
	}
	path := filepath.Join(t.TempDir(), "drill.svg")
	if err := writeSVG(path, r); err != nil {
		t.Fatal(err)
	}
	texts := svgTexts(t, path)
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"AWSPENDING created (createSecret)", "password changed (setSecret)",
		"new password tested (testSecret)", "AWSCURRENT moved (finishSecret)",
		"rotatingmysql — 12,345 queries, 0 application errors, 3 failed logins absorbed, 4 API calls",
		"go-sql-driver/mysql, password read once at start — 3,329 queries, 1,217 application errors",
		"successful queries per second", "application errors per second",
		"the window: the database has the new password, AWSCURRENT still the old one",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("picture lacks %q; its texts:\n%s", want, all)
		}
	}
	checkVocabulary(t, "picture", all)
	for _, s := range texts {
		if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 1000 {
			t.Errorf("axis tick %q: the bucket after the shutdown (50,000 queries/s) is drawn; the drill ran at 340/s", s)
		}
	}
}

func TestMarkLabel(t *testing.T) {
	g := []Mark{
		{Step: stepFinishSecret, Rotation: 1}, {Step: stepAfter, Rotation: 1},
		{Step: stepCreateSecret, Rotation: 2}, {Step: stepSetSecret, Rotation: 2}, {Step: stepWindow, Rotation: 2},
	}
	want := "#1 AWSCURRENT moved (finishSecret)\n#2 AWSPENDING created (createSecret)\n#2 password changed (setSecret)"
	if got := markLabel(g, true); got != want {
		t.Errorf("numbered:\n%s\nwant\n%s", got, want)
	}
	if got := markLabel(g[:2], false); got != "AWSCURRENT moved (finishSecret)" {
		t.Errorf("one rotation: %q", got)
	}
	// -aws sees no finishSecret: the rotation's end reads as AWSCURRENT moving.
	aws := []Mark{{Step: stepRequested, Rotation: 1}, {Step: stepPending, Rotation: 1}}
	if got := markLabel(aws, false); got != "rotation requested (RotateSecret)\nAWSPENDING appeared (createSecret)" {
		t.Errorf("-aws start: %q", got)
	}
	if got := markLabel([]Mark{{Step: stepAfter, Rotation: 1}}, false); got != "AWSCURRENT moved" {
		t.Errorf("-aws end: %q", got)
	}
}

// TestPlaceLabels checks that labels of steps close in time do not
// overlap, and that one near the end is drawn left of its line.
func TestPlaceLabels(t *testing.T) {
	groups := [][]Mark{
		{{Step: stepCreateSecret, Rotation: 1, AtMS: 2500}, {Step: stepSetSecret, Rotation: 1, AtMS: 2501}},
		{{Step: stepFinishSecret, Rotation: 1, AtMS: 3000}},
		{{Step: stepFinishSecret, Rotation: 2, AtMS: 6000}},
		{{Step: stepFinishSecret, Rotation: 3, AtMS: 9900}},
	}
	l := placeLabels(groups, false, 10)
	if len(l.labels) != 4 {
		t.Fatalf("%d labels, want 4", len(l.labels))
	}
	if a, b := l.labels[0], l.labels[1]; b.line < a.line+2 {
		t.Errorf("the label at 3 s starts on line %d, inside the two lines of the one at 2.5 s (line %d)", b.line, a.line)
	}
	if c := l.labels[2]; c.line != 0 {
		t.Errorf("the label at 6 s, clear of the others, is on line %d, want 0", c.line)
	}
	if last := l.labels[3]; !last.right || last.x > 10 {
		t.Errorf("the label at 9.9 s: right-aligned %v at %v s, want right-aligned within 10 s", last.right, last.x)
	}
	if l.lines != 3 || l.lineHeight <= 0 {
		t.Errorf("%d lines of %v points, want 3 lines", l.lines, l.lineHeight)
	}
}

// TestCheckedInPicture checks docs/drill.svg, the picture of a default
// make drill run the docs show: drawn by this code, in these words.
func TestCheckedInPicture(t *testing.T) {
	texts := strings.Join(svgTexts(t, filepath.Join("..", "..", "docs", "drill.svg")), "\n")
	for _, want := range []string{
		"password changed (setSecret)", "AWSCURRENT moved (finishSecret)",
		"rotatingmysql — ", " queries, 0 application errors, ", " absorbed, ", " API calls",
		"go-sql-driver/mysql, password read once at start — ",
	} {
		if !strings.Contains(texts, want) {
			t.Errorf("docs/drill.svg lacks %q (redraw it with make drill and copy bin/rotation-drill.svg):\n%s", want, texts)
		}
	}
	checkVocabulary(t, "docs/drill.svg", texts)
}
