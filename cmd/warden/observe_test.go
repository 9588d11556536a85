package main

import (
	"strings"
	"testing"
)

func TestParseConfigObserveAndLog(t *testing.T) {
	withEnv := env(map[string]string{"SHOP_DSN": "postgres://u:hunter2@db/shop"})
	cfg, err := ParseConfig([]byte(goodConfig+`
log: {level: debug, format: json}
observe:
  listen: "0.0.0.0:9090"
  traces: {endpoint: "http://collector:4318", sample_ratio: 0.25}
`), withEnv)
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	if cfg.Log.Format != "json" || cfg.Observe.Listen != "0.0.0.0:9090" || *cfg.Observe.Traces.SampleRatio != 0.25 {
		t.Errorf("log, observe = %+v, %+v; want what the file says", cfg.Log, cfg.Observe)
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"UnknownLogFormat", "log: {format: xml}\n", `log.format: "xml" is not a format`},
		{"UnknownLogLevel", "log: {level: loud}\n", `log.level: "loud" is not a level`},
		{"UnknownObserveKey", "observe: {metrics_port: 9090}\n", "observe.metrics_port: unknown key"},
		{"ListenWithoutPort", "observe: {listen: 0.0.0.0}\n", `observe.listen: "0.0.0.0" is not an address`},
		{"TracesEndpointWithCredentials", "observe: {traces: {endpoint: 'https://u:tok3n@collector:4318'}}\n", "observe.traces.endpoint: not an OTLP/HTTP endpoint"},
		{"TracesRatioAboveOne", "observe: {traces: {endpoint: 'http://c:4318', sample_ratio: 2}}\n", "observe.traces.sample_ratio: 2 is not a ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(goodConfig+tc.yaml), withEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%s) = %v; want %q", tc.name, err, tc.want)
			}
			if strings.Contains(err.Error(), "tok3n") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes a credential: %v", err)
			}
		})
	}
}
