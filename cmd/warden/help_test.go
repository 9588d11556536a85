package main

import (
	"bytes"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestFlagRendering(t *testing.T) {
	fs := flag.NewFlagSet("warden test", flag.ContinueOnError)
	fs.String("export", "", "verify this file written by `sessions export` instead of the store")
	fs.String("dsn", "", "PostgreSQL URL; `${VAR}` reads it from the environment variable VAR")
	fs.String("key", "", "the `KEY[:id]` to sign with")
	fs.Int("limit", 50, "at most this many")
	fs.Bool("all", false, "every request")
	fs.Duration("wait", 0, "how long")
	fs.String("config", "warden.yaml", "config file")
	var b bytes.Buffer
	writeFlags(&b, fs)
	want := `
Flags:
  --all
        every request
  --config FILE
        config file (default "warden.yaml")
  --dsn URL
        PostgreSQL URL; ` + "`${VAR}`" + ` reads it from the environment variable VAR
  --export FILE
        verify this file written by ` + "`sessions export`" + ` instead of the store
  --key KEY[:id]
        the KEY[:id] to sign with
  --limit N
        at most this many (default 50)
  --wait DURATION
        how long
`
	if b.String() != want {
		t.Errorf("writeFlags =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestExplainArgs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want map[string]any
		err  string
	}{
		{[]string{"sql=SELECT 1", "database=shop"}, map[string]any{"sql": "SELECT 1", "database": "shop"}, ""},
		{[]string{"params=[1,\"a\"]"}, map[string]any{"params": []any{1.0, "a"}}, ""},
		{[]string{"params=[not json"}, map[string]any{"params": "[not json"}, ""},
		{[]string{"limit:=5", "flag:=true", `name:="007"`}, map[string]any{"limit": 5.0, "flag": true, "name": "007"}, ""},
		{[]string{"sql=a=b:=c"}, map[string]any{"sql": "a=b:=c"}, ""},
		{[]string{"limit:=five"}, nil, "not JSON"},
		{[]string{"novalue"}, nil, "neither key=value nor key:=json"},
		{[]string{"=x"}, nil, "neither"},
		{[]string{":=1"}, nil, "neither"},
	} {
		got, err := explainArgs(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("explainArgs(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("explainArgs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
