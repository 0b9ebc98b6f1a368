package taplinestack

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/tapline/tapline/sinks/athena"
	"github.com/tapline/tapline/sinks/layout"
)

// template synthesizes the stack once (offline: no AWS account, the
// machine's Node runs the CDK) and returns it as JSON.
var template = func() func(t *testing.T) map[string]any {
	var tpl map[string]any
	var err error
	return func(t *testing.T) map[string]any {
		t.Helper()
		if tpl == nil && err == nil {
			tpl, err = synth(t, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		return tpl
	}
}()

// synth synthesizes the test stack, its props changed by change if set.
func synth(t *testing.T, change func(*Props)) (map[string]any, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	asset, err := os.MkdirTemp("", "commander-*")
	if err != nil {
		return nil, err
	}
	// The synth only stages the assets: a placeholder bootstrap and the
	// real Dockerfile beside a placeholder binary will do.
	if err := os.WriteFile(filepath.Join(asset, "bootstrap"), []byte("placeholder"), 0o755); err != nil {
		return nil, err
	}
	image, err := os.MkdirTemp("", "image-*")
	if err != nil {
		return nil, err
	}
	df, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"Dockerfile": df, "tapline": []byte("placeholder"), "rules.yml": nil} {
		if err := os.WriteFile(filepath.Join(image, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	out, err := os.MkdirTemp("", "cdk-out-*")
	if err != nil {
		return nil, err
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	p := Props{
		StackProps: awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")}},
		ImageAsset: image, CommanderAsset: asset, OpsEmail: "ops@example.com", PageURL: "https://events.pagerduty.com/integration/x/enqueue",
		IoTDataEndpoint: "https://example-ats.iot.eu-west-1.amazonaws.com",
		DashboardAsset:  filepath.Join("..", "..", "..", "cmd", "internal", "dashboard", "static"),
	}
	if change != nil {
		change(&p)
	}
	stack, err := New(app, "Tapline", p)
	if err != nil {
		return nil, err
	}
	tpl := assertions.Template_FromStack(stack, nil).ToJSON()
	b, err := json.Marshal(tpl)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// resources returns the template's resources of a type, by logical id.
func resources(t *testing.T, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range template(t)["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			props, _ := r["Properties"].(map[string]any)
			out[id] = props
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in the template", typ)
	}
	return out
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// Every store is encrypted with the customer-managed key.
func TestEncryptionEverywhere(t *testing.T) {
	for id, p := range resources(t, "AWS::Kinesis::Stream") {
		if get(p, "StreamEncryption", "EncryptionType") != "KMS" {
			t.Errorf("stream %s: %s", id, js(p["StreamEncryption"]))
		}
	}
	for id, p := range resources(t, "AWS::DynamoDB::Table") {
		if get(p, "SSESpecification", "SSEEnabled") != true || get(p, "SSESpecification", "SSEType") != "KMS" || get(p, "BillingMode") != "PAY_PER_REQUEST" {
			t.Errorf("lease table %s: %s", id, js(p))
		}
		if js(p["KeySchema"]) != `[{"AttributeName":"ShardID","KeyType":"HASH"}]` {
			t.Errorf("lease table key %s: the KCL's schema is ShardID", js(p["KeySchema"]))
		}
	}
	for id, p := range resources(t, "AWS::S3::Bucket") {
		enc := js(p["BucketEncryption"])
		if !strings.Contains(enc, `"SSEAlgorithm":"aws:kms"`) || js(get(p, "PublicAccessBlockConfiguration")) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` ||
			!strings.Contains(js(p["OwnershipControls"]), "BucketOwnerEnforced") {
			t.Errorf("bucket %s: %s", id, js(p))
		}
	}
	for _, typ := range []string{"AWS::SNS::Topic", "AWS::SQS::Queue"} {
		for id, p := range resources(t, typ) {
			if p["KmsMasterKeyId"] == nil {
				t.Errorf("%s %s is not encrypted with KMS", typ, id)
			}
		}
	}
	for id, p := range resources(t, "AWS::Logs::LogGroup") {
		if p["KmsKeyId"] == nil {
			t.Errorf("log group %s is not encrypted", id)
		}
	}
	for id, p := range resources(t, "AWS::KMS::Key") {
		if p["EnableKeyRotation"] != true {
			t.Errorf("key %s: rotation off", id)
		}
	}
}

// Buckets, topics and queues refuse requests without TLS.
func TestTLSOnly(t *testing.T) {
	for _, typ := range []string{"AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"} {
		for id, p := range resources(t, typ) {
			if !strings.Contains(js(p), `"aws:SecureTransport":"false"`) {
				t.Errorf("%s %s does not deny insecure transport: %s", typ, id, js(p))
			}
		}
	}
}

// No role may do everything: no "*" or "service:*" action, and "*" as a
// resource only for actions that have no resource (ECR's token, X-Ray,
// and the KMS key's own policy, whose resource is the key).
func TestLeastPrivilege(t *testing.T) {
	resourceless := map[string]bool{"ecr:GetAuthorizationToken": true}
	for id, p := range resources(t, "AWS::IAM::Policy") {
		for _, st := range get(p, "PolicyDocument", "Statement").([]any) {
			st := st.(map[string]any)
			actions := list(st["Action"])
			for _, a := range actions {
				if a == "*" || strings.HasSuffix(a, ":*") {
					t.Errorf("policy %s allows %s", id, a)
				}
			}
			res, ok := st["Resource"].([]any)
			if !ok {
				res = []any{st["Resource"]}
			}
			for _, r := range res {
				if r == "*" {
					for _, a := range actions {
						if !resourceless[a] {
							t.Errorf("policy %s: %s on every resource", id, a)
						}
					}
				}
			}
		}
	}
	// The task role: read the stream, use its lease table, write under its
	// prefix, publish to its topic; the commander: only things and topics
	// with the configured prefix.
	all := js(resources(t, "AWS::IAM::Policy"))
	for _, want := range []string{`"s3:GetObject","s3:PutObject"`, `/tapline/*`, `"s3:prefix":["tapline/*"]`, `thing/keg-*`, `topic/tapline/commands/keg-*`, `"sns:Publish"`, `"kinesis:GetRecords"`} {
		if !strings.Contains(all, want) {
			t.Errorf("policies lack %s", want)
		}
	}
	delete := 0
	for id, p := range resources(t, "AWS::IAM::Policy") {
		if doc := js(p["PolicyDocument"]); strings.Contains(doc, `"s3:DeleteObject"`) {
			delete++
			if !strings.HasPrefix(id, "CompactorRole") {
				t.Errorf("policy %s grants s3:DeleteObject", id)
			}
		}
	}
	if delete != 1 {
		t.Errorf("%d policies grant s3:DeleteObject, want the compactor's alone", delete)
	}
	for _, bad := range []string{`"dynamodb:CreateTable"`, `"kinesis:PutRecord","kinesis:PutRecords"],"Effect":"Allow","Resource":"*"`} {
		if strings.Contains(all, bad) {
			t.Errorf("policies grant %s", bad)
		}
	}
}

func list(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}

// The IoT rule shapes device messages into tapline's records and
// partitions them by device id; its errors are logged.
func TestTopicRule(t *testing.T) {
	for _, p := range resources(t, "AWS::IoT::TopicRule") {
		payload := p["TopicRulePayload"].(map[string]any)
		if payload["Sql"] != RuleSQL || payload["AwsIotSqlVersion"] != "2016-03-23" {
			t.Errorf("rule SQL %v (%v)", payload["Sql"], payload["AwsIotSqlVersion"])
		}
		if get(payload["Actions"].([]any)[0], "Kinesis", "PartitionKey") != "${topic(3)}" {
			t.Errorf("partition key %s", js(payload["Actions"]))
		}
		if get(payload, "ErrorAction", "CloudwatchLogs") == nil {
			t.Error("no error action")
		}
	}
	if !strings.Contains(RuleSQL, "topic(3) AS device_id") || !strings.Contains(RuleSQL, "CASE isUndefined(readings) WHEN true THEN coalesce(ts, timestamp()) ELSE ts END AS ts") {
		t.Errorf("rule SQL %q does not take the device from the topic and the time from the payload or the broker", RuleSQL)
	}
	if !strings.Contains(RuleSQL, ", readings FROM") {
		t.Errorf("rule SQL %q drops batched readings", RuleSQL)
	}
}

// The service: stopTimeout 120 (ECS's maximum), the health check, no
// public IP, VPC endpoints instead of a NAT.
func TestService(t *testing.T) {
	for _, p := range serviceTasks(t) {
		c := p["ContainerDefinitions"].([]any)[0].(map[string]any)
		if c["StopTimeout"] != float64(120) {
			t.Errorf("stopTimeout %v", c["StopTimeout"])
		}
		if js(get(c, "HealthCheck", "Command")) != `["CMD","/tapline","healthcheck"]` {
			t.Errorf("health check %s", js(c["HealthCheck"]))
		}
		if p["TaskRoleArn"] == nil || p["ExecutionRoleArn"] == nil || js(p["TaskRoleArn"]) == js(p["ExecutionRoleArn"]) {
			t.Error("task and execution roles must be separate")
		}
	}
	for _, p := range resources(t, "AWS::ECS::Service") {
		if get(p, "NetworkConfiguration", "AwsvpcConfiguration", "AssignPublicIp") != "DISABLED" {
			t.Errorf("service network %s", js(p["NetworkConfiguration"]))
		}
	}
	if _, ok := template(t)["Resources"].(map[string]any)["VpcNATGateway"]; ok {
		t.Error("a NAT gateway")
	}
	var endpoints []string
	for _, p := range resources(t, "AWS::EC2::VPCEndpoint") {
		endpoints = append(endpoints, js(p["ServiceName"]))
	}
	sort.Strings(endpoints)
	all := strings.Join(endpoints, " ")
	for _, svc := range []string{"kinesis-streams", "sns", "logs", "ecr.api", "ecr.dkr", "kms", ".s3", ".dynamodb"} {
		if !strings.Contains(all, svc) {
			t.Errorf("no VPC endpoint for %s: %s", svc, all)
		}
	}
	if len(resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy")) < 2 {
		t.Error("want CPU and iterator-age scaling")
	}
	if n := len(resources(t, "AWS::CloudWatch::Alarm")); n < 6 {
		t.Errorf("%d alarms, want iterator age, errors, dead letters, alerts dead-lettered, Lambda errors, DLQ", n)
	}
	// The service's log lines the alarms count (pipeline/service; the
	// fault tests check that the service writes them).
	patterns := map[string]bool{}
	for _, p := range resources(t, "AWS::Logs::MetricFilter") {
		patterns[fmt.Sprint(p["FilterPattern"])] = true
	}
	for _, want := range []string{`{ $.msg = "alert dead-lettered" }`, `{ $.msg = "batch committed" && $.dead_letters > 0 }`} {
		if !patterns[want] {
			t.Errorf("no metric filter %s among %v", want, patterns)
		}
	}
	for id, p := range resources(t, "AWS::Lambda::Function") {
		if strings.HasPrefix(id, "Commander") && (js(p["Architectures"]) != `["arm64"]` || p["Runtime"] != "provided.al2023") {
			t.Errorf("commander runtime %v on %s", p["Runtime"], js(p["Architectures"]))
		}
	}
}

// The Glue tables project partitions exactly as `tapline athena-ddl`
// says: the same columns and TBLPROPERTIES, in the stack's bucket.
func TestGlueTablesMatchAthenaDDL(t *testing.T) {
	want, err := athena.Tables("placeholder-bucket", "tapline", "2024-01-01")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, p := range resources(t, "AWS::Glue::Table") {
		got[get(p, "TableInput", "Name").(string)] = p["TableInput"].(map[string]any)
	}
	for _, w := range want {
		g := got[w.Name]
		if g == nil {
			t.Errorf("no Glue table %s", w.Name)
			continue
		}
		var cols []string
		for _, c := range w.Columns {
			cols = append(cols, c.Name+" "+c.Type)
		}
		var gcols []string
		for _, c := range get(g, "StorageDescriptor", "Columns").([]any) {
			gcols = append(gcols, c.(map[string]any)["Name"].(string)+" "+c.(map[string]any)["Type"].(string))
		}
		if strings.Join(cols, ",") != strings.Join(gcols, ",") {
			t.Errorf("%s columns:\n glue  %v\n athena %v", w.Name, gcols, cols)
		}
		params := g["Parameters"].(map[string]any)
		for k, v := range w.Projection {
			gv := js(params[k])
			if strings.HasPrefix(v, "s3://placeholder-bucket/") {
				if !strings.Contains(gv, strings.TrimPrefix(v, "s3://placeholder-bucket")) {
					t.Errorf("%s %s = %s, want %s in the stack's bucket", w.Name, k, gv, v)
				}
			} else if params[k] != v {
				t.Errorf("%s %s = %s, want %q", w.Name, k, gv, v)
			}
		}
	}
}

// The key lets services use it only for this account: CloudWatch Logs by
// the log group in the encryption context, CloudWatch alarms (to the
// encrypted ops topic) and SNS (to the encrypted dead-letter queue) by
// source account, CloudFront (the dashboard's pages) to decrypt only, for
// this account's distributions.
func TestKeyPolicyScopesServices(t *testing.T) {
	for id, p := range resources(t, "AWS::KMS::Key") {
		seen := map[string]bool{}
		for _, st := range get(p, "KeyPolicy", "Statement").([]any) {
			st := st.(map[string]any)
			svc := js(get(st, "Principal", "Service"))
			cond := js(st["Condition"])
			switch {
			case strings.Contains(svc, "logs."):
				seen["logs"] = strings.Contains(cond, "kms:EncryptionContext:aws:logs:arn") && strings.Contains(cond, "log-group:*")
			case strings.Contains(svc, "cloudwatch.amazonaws.com"):
				seen["cloudwatch"] = strings.Contains(cond, "aws:SourceAccount")
			case strings.Contains(svc, "sns.amazonaws.com"):
				seen["sns"] = strings.Contains(cond, "aws:SourceAccount")
			case strings.Contains(svc, "cloudfront.amazonaws.com"): // the dashboard's pages, read through OAC
				seen["cloudfront"] = js(st["Action"]) == `"kms:Decrypt"` && strings.Contains(cond, `"AWS:SourceArn"`) && strings.Contains(cond, `":cloudfront::",{"Ref":"AWS::AccountId"},":distribution/`)
			case svc != "null":
				t.Errorf("key %s: unexpected service statement %s", id, js(st))
			}
		}
		for _, svc := range []string{"logs", "cloudwatch", "sns", "cloudfront"} {
			if !seen[svc] {
				t.Errorf("key %s: no %s statement scoped to this account", id, svc)
			}
		}
	}
}

// Every VPC endpoint serves only this account's principals.
func TestEndpointsServeOnlyThisAccount(t *testing.T) {
	eps := resources(t, "AWS::EC2::VPCEndpoint")
	if len(eps) < 8 {
		t.Fatalf("%d endpoints", len(eps))
	}
	for id, p := range eps {
		doc := js(p["PolicyDocument"])
		if !strings.Contains(doc, `"aws:PrincipalAccount"`) || strings.Count(doc, `"Effect"`) != 1 {
			t.Errorf("endpoint %s: policy %s", id, doc)
		}
	}
}

// Only the service's task role may publish to the alerts topic, and the
// commander knows which topic its alerts come from and which things it
// may command.
func TestAlertsComeOnlyFromTheService(t *testing.T) {
	var topic string
	for id, p := range resources(t, "AWS::SNS::Topic") {
		if strings.HasPrefix(id, "Alerts") {
			topic = id
		}
		_ = p
	}
	found := false
	for _, p := range resources(t, "AWS::SNS::TopicPolicy") {
		if !strings.Contains(js(p["Topics"]), topic) {
			continue
		}
		for _, st := range get(p, "PolicyDocument", "Statement").([]any) {
			st := st.(map[string]any)
			cond := js(get(st, "Condition", "ArnNotEquals", "aws:PrincipalArn"))
			if st["Effect"] == "Deny" && js(st["Action"]) == `"sns:Publish"` && js(st["Principal"]) == `{"AWS":"*"}` && strings.Contains(cond, "TaskRole") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no topic policy denies sns:Publish on %s to all but the task role", topic)
	}
	for _, p := range resources(t, "AWS::Lambda::Function") {
		env := get(p, "Environment", "Variables").(map[string]any)
		if env["TAPLINE_COMMAND_BACKEND"] == nil {
			continue // not the commander
		}
		if !strings.Contains(js(env["TAPLINE_ALERTS_TOPIC_ARN"]), topic) || env["TAPLINE_THING_PREFIX"] != "keg-" ||
			!strings.Contains(js(env["TAPLINE_ALERT_MAC_KEY"]), "{{resolve:secretsmanager:") || !strings.Contains(js(env["TAPLINE_ALERT_MAC_KEY"]), "AlertMACKey") {
			t.Errorf("commander environment %s", js(env))
		}
	}
	// The service signs with the same secret, handed to the container by
	// ECS (never in the template or the task definition's plain text).
	for _, p := range serviceTasks(t) {
		c := p["ContainerDefinitions"].([]any)[0].(map[string]any)
		if s := js(c["Secrets"]); !strings.Contains(s, `"Name":"TAPLINE_SNS_MAC_KEY"`) || !strings.Contains(s, "AlertMACKey") {
			t.Errorf("container secrets %s", s)
		}
	}
}

// Only the task role writes the prefixes the service reads back.
func TestOnlyTheServiceWritesWhatItReadsBack(t *testing.T) {
	found := false
	for _, p := range resources(t, "AWS::S3::BucketPolicy") {
		for _, st := range get(p, "PolicyDocument", "Statement").([]any) {
			st := st.(map[string]any)
			if st["Effect"] != "Deny" || !strings.Contains(js(st["Action"]), "s3:PutObject") {
				continue
			}
			res, cond := js(st["Resource"]), js(get(st, "Condition", "ArnNotEquals", "aws:PrincipalArn"))
			if strings.Contains(res, "tapline/deadletter/*") && strings.Contains(res, "tapline/_state/*") && strings.Contains(res, "tapline/_app/*") && strings.Contains(cond, "TaskRole") {
				found = true
			}
		}
	}
	if !found {
		t.Error("no bucket policy keeps all but the task role from writing deadletter/, _state/ and _app/")
	}
}

// Silences are written by the Silencers role only (and the service), and
// that role can touch nothing but them.
func TestOnlySilencersWriteSilences(t *testing.T) {
	found := false
	for _, p := range resources(t, "AWS::S3::BucketPolicy") {
		for _, st := range get(p, "PolicyDocument", "Statement").([]any) {
			st := st.(map[string]any)
			cond := js(get(st, "Condition", "ArnNotEquals", "aws:PrincipalArn"))
			if st["Effect"] == "Deny" && strings.Contains(js(st["Resource"]), "tapline/_silences/*") && strings.Contains(cond, "Silencers") && strings.Contains(cond, "TaskRole") {
				found = true
			}
		}
	}
	if !found {
		t.Error("no bucket policy keeps all but the silencers and the task role from writing _silences/")
	}
	statements := 0
	for name, p := range resources(t, "AWS::IAM::Policy") {
		if !strings.HasPrefix(name, "Silencers") {
			continue
		}
		for _, st := range get(p, "PolicyDocument", "Statement").([]any) {
			if strings.Contains(js(get(st, "Action")), "s3:") {
				statements++
				if !strings.Contains(js(st), "tapline/_silences/tapline/*") {
					t.Errorf("the silencers role reaches beyond the silences: %s", js(st))
				}
			}
		}
	}
	if statements != 2 {
		t.Errorf("%d S3 statements for the silencers role, want 2 (objects, list)", statements)
	}
}

// Operators reach the commander only through an IAM-authenticated URL.
func TestOperatorURLIsIAMAuthenticated(t *testing.T) {
	for id, p := range resources(t, "AWS::Lambda::Url") {
		if p["AuthType"] != "AWS_IAM" || !strings.Contains(js(p["TargetFunctionArn"]), "Commander") {
			t.Errorf("function URL %s: %s", id, js(p))
		}
	}
}

// Devices connect as their thing and publish and hear only their own
// topics: the telemetry rule takes device_id from the topic, so one thing
// cannot raise alerts (and commands) for another.
func TestDevicePolicyBindsTheThingName(t *testing.T) {
	for id, p := range resources(t, "AWS::IoT::Policy") {
		if strings.HasPrefix(id, "Dashboard") {
			continue // TestDashboard
		}
		doc := js(p["PolicyDocument"])
		for _, want := range []string{`client/${ThingName}`, `topic/tapline/telemetry/${ThingName}`, `topicfilter/tapline/commands/${ThingName}`, `"ThingName":"${iot:Connection.Thing.ThingName}"`} {
			if !strings.Contains(doc, want) {
				t.Errorf("device policy %s lacks %s: %s", id, want, doc)
			}
		}
		if strings.Contains(doc, "tapline/telemetry/*") || strings.Contains(doc, `"Resource":"*"`) {
			t.Errorf("device policy %s grants beyond the thing: %s", id, doc)
		}
	}
}

// Shard state expires; the first-start marker, which LATEST resolves to
// for every shard (children of later splits too), never does.
func TestStateExpiresButNotTheFirstStart(t *testing.T) {
	state := layout.StateDir("tapline", "tapline", "shardId-000000000000", "123") + "base.snap"
	first := layout.FirstStart("tapline", "tapline")
	stateExpires := false
	for id, p := range resources(t, "AWS::S3::Bucket") {
		rules, _ := get(p, "LifecycleConfiguration", "Rules").([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			prefix, _ := r["Prefix"].(string)
			if r["ExpirationInDays"] == nil {
				continue
			}
			if strings.HasPrefix(first, prefix) {
				t.Errorf("bucket %s: lifecycle rule %v expires the first-start marker %s", id, r["Id"], first)
			}
			if strings.HasPrefix(state, prefix) {
				stateExpires = true
			}
		}
	}
	if !stateExpires {
		t.Errorf("no lifecycle rule expires shard state (%s)", state)
	}
}

// The container runs `tapline run` with the rules baked into the image.
func TestContainerConfig(t *testing.T) {
	for _, p := range serviceTasks(t) {
		c := p["ContainerDefinitions"].([]any)[0].(map[string]any)
		env := map[string]string{}
		for _, e := range c["Environment"].([]any) {
			e := e.(map[string]any)
			if v, ok := e["Value"].(string); ok {
				env[e["Name"].(string)] = v
			}
		}
		if env["TAPLINE_RULES_FILE"] != "/etc/tapline/rules.yml" || env["TAPLINE_S3_PREFIX"] != "tapline" || env["TAPLINE_APP"] != "tapline" {
			t.Errorf("container environment %v", env)
		}
		if js(c["Command"]) != `["run"]` {
			t.Errorf("command %s", js(c["Command"]))
		}
	}
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "/etc/tapline/rules.yml") {
		t.Error("the Dockerfile does not put the rules where the task looks for them")
	}
}

// Alerts are routed by severity: ops mail gets warning and critical, the
// pager critical only, the commander everything; alarms go to ops whole.
func TestAlertsRoutedBySeverity(t *testing.T) {
	want := map[string]string{
		"email":  `{"severity":["critical","warning"]}`,
		"https":  `{"severity":["critical"]}`,
		"lambda": "null",
	}
	seen := map[string]int{}
	for _, p := range resources(t, "AWS::SNS::Subscription") {
		proto := p["Protocol"].(string)
		topic := js(p["TopicArn"])
		if proto == "email" && !strings.Contains(topic, "Alerts") {
			if p["FilterPolicy"] != nil {
				t.Errorf("ops alarms filtered: %s", js(p["FilterPolicy"]))
			}
			continue
		}
		seen[proto]++
		if got := js(p["FilterPolicy"]); got != want[proto] {
			t.Errorf("%s subscription to %s: filter %s, want %s", proto, topic, got, want[proto])
		}
	}
	if seen["email"] != 1 || seen["https"] != 1 || seen["lambda"] != 1 {
		t.Errorf("alert subscriptions by protocol: %v", seen)
	}
}

// serviceTasks are the service's task definitions (not compaction's).
func serviceTasks(t *testing.T) []map[string]any {
	var out []map[string]any
	for id, p := range resources(t, "AWS::ECS::TaskDefinition") {
		if strings.HasPrefix(id, "Task") {
			out = append(out, p)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d service task definitions", len(out))
	}
	return out
}

// Compaction runs hourly as its own task with its own role: it alone
// deletes dataset files and writes under compacted/ (the manifests
// decide what the views show), enforced by the bucket policy too; and
// the views are Athena views over the landing, compacted and manifest
// tables.
func TestCompaction(t *testing.T) {
	var task map[string]any
	for id, p := range resources(t, "AWS::ECS::TaskDefinition") {
		if strings.HasPrefix(id, "CompactTask") {
			task = p
		}
	}
	if task == nil {
		t.Fatal("no compaction task")
	}
	c := task["ContainerDefinitions"].([]any)[0].(map[string]any)
	if js(c["Command"]) != `["compact","-settle","2h"]` || !strings.Contains(js(task["TaskRoleArn"]), "CompactorRole") {
		t.Errorf("compaction task: command %s, role %s", js(c["Command"]), js(task["TaskRoleArn"]))
	}
	rules := resources(t, "AWS::Events::Rule")
	found := false
	for _, r := range rules {
		if r["ScheduleExpression"] == "cron(20 * * * ? *)" && strings.Contains(js(r["Targets"]), "CompactTask") {
			found = true
		}
	}
	if !found {
		t.Errorf("no hourly rule runs the compaction task: %s", js(rules))
	}
	var policy string
	for id, p := range resources(t, "AWS::IAM::Policy") {
		if strings.HasPrefix(id, "CompactorRole") {
			policy = js(p["PolicyDocument"])
		}
	}
	for _, want := range []string{`"s3:GetObject","s3:DeleteObject"`, `/tapline/raw/*`, `/tapline/windows/*`, `/tapline/alerts/*`, `"s3:GetObject","s3:PutObject","s3:DeleteObject"`, `/tapline/compacted/*`} {
		if !strings.Contains(policy, want) {
			t.Errorf("compactor policy lacks %s: %s", want, policy)
		}
	}
	if strings.Contains(policy, "/tapline/_state") || strings.Contains(policy, "/tapline/*") {
		t.Errorf("compactor reaches beyond the datasets: %s", policy)
	}
	bucketPolicy := js(resources(t, "AWS::S3::BucketPolicy"))
	for _, sid := range []string{"OnlyTheCompactorWritesCompacted", "OnlyTheCompactorDeletesData"} {
		if !strings.Contains(bucketPolicy, sid) {
			t.Errorf("bucket policy lacks %s", sid)
		}
	}
	views := 0
	for _, p := range resources(t, "AWS::Glue::Table") {
		in := p["TableInput"].(map[string]any)
		if in["TableType"] != "VIRTUAL_VIEW" {
			continue
		}
		views++
		text := in["ViewOriginalText"].(string)
		b64 := strings.TrimSuffix(strings.TrimPrefix(text, "/* Presto View: "), " */")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("view %v: %v", in["Name"], err)
		}
		var v struct {
			OriginalSQL string `json:"originalSql"`
			Columns     []struct{ Name, Type string }
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		name := in["Name"].(string)
		if !strings.Contains(v.OriginalSQL, `"tapline"."`+name+`_landing"`) || !strings.Contains(v.OriginalSQL, `"tapline"."compaction_manifest"`) || len(v.Columns) < 3 {
			t.Errorf("view %s: %s", name, raw)
		}
	}
	if views != 3 {
		t.Errorf("%d views, want raw, windows and alerts", views)
	}
}

// The dashboard: the service may publish only under its live topics;
// only signed-in operators get a role, which reads the live and
// telemetry topics and invokes the commander's URL, and publishes
// nothing; the page's bucket is private, read by CloudFront through
// origin access control.
func TestDashboard(t *testing.T) {
	policies := resources(t, "AWS::IAM::Policy")
	var task, viewer string
	for id, p := range policies {
		switch {
		case strings.HasPrefix(id, "TaskRoleDefaultPolicy"):
			task = js(p["PolicyDocument"])
		case strings.HasPrefix(id, "DashboardRole"):
			viewer = js(p["PolicyDocument"])
		}
	}
	if !strings.Contains(task, `"Action":"iot:Publish"`) || !strings.Contains(task, `topic/tapline/live/tapline/*`) {
		t.Errorf("task role cannot publish the live topics: %s", task)
	}
	for _, want := range []string{`"Action":"iot:Connect"`, `client/tapline-dash-*`, `"Action":"iot:Subscribe"`, `topicfilter/tapline/live/tapline/*`,
		`"Action":"iot:Receive"`, `topic/tapline/telemetry/*`, `"lambda:InvokeFunctionUrl"`} {
		if !strings.Contains(viewer, want) {
			t.Errorf("dashboard role lacks %s: %s", want, viewer)
		}
	}
	if strings.Contains(viewer, "iot:Publish") || strings.Contains(viewer, "tapline/commands") {
		t.Errorf("dashboard role may publish or reach device topics: %s", viewer)
	}
	for _, p := range resources(t, "AWS::Cognito::IdentityPool") {
		if p["AllowUnauthenticatedIdentities"] != false {
			t.Errorf("identity pool allows unauthenticated identities: %s", js(p))
		}
	}
	for id, p := range resources(t, "AWS::IAM::Role") {
		if strings.HasPrefix(id, "DashboardRole") {
			trust := js(p["AssumeRolePolicyDocument"])
			if !strings.Contains(trust, `"cognito-identity.amazonaws.com:amr":"authenticated"`) || !strings.Contains(trust, `"cognito-identity.amazonaws.com:aud"`) {
				t.Errorf("dashboard role trust: %s", trust)
			}
		}
	}
	for _, p := range resources(t, "AWS::Cognito::UserPool") {
		if get(p, "AdminCreateUserConfig", "AllowAdminCreateUserOnly") != true {
			t.Errorf("operators can sign themselves up: %s", js(p))
		}
	}
	oac := resources(t, "AWS::CloudFront::OriginAccessControl")
	dist := resources(t, "AWS::CloudFront::Distribution")
	if len(oac) != 1 || len(dist) != 1 {
		t.Fatalf("%d origin access controls, %d distributions", len(oac), len(dist))
	}
	for _, d := range dist {
		cfg := js(d["DistributionConfig"])
		if !strings.Contains(cfg, `"OriginAccessControlId"`) || !strings.Contains(cfg, `"ViewerProtocolPolicy":"redirect-to-https"`) || !strings.Contains(cfg, `"DefaultRootObject":"index.html"`) {
			t.Errorf("distribution: %s", cfg)
		}
		// Without a domain of its own the page is on CloudFront's
		// certificate, whose TLSv1 minimum no setting changes: none is
		// claimed (TestDashboardOnItsOwnDomain sets TLS 1.2).
		if strings.Contains(cfg, "MinimumProtocolVersion") {
			t.Errorf("a minimum TLS version set that CloudFront ignores: %s", cfg)
		}
	}
	for _, p := range resources(t, "AWS::Cognito::UserPoolClient") {
		if js(p["AllowedOAuthFlows"]) != `["code"]` || p["GenerateSecret"] == true || !strings.Contains(js(p["CallbackURLs"]), "DistributionDomainName") && !strings.Contains(js(p["CallbackURLs"]), "DashboardCDN") {
			t.Errorf("the page's sign-in client: %s", js(p))
		}
	}
	deployed := false
	for _, p := range resources(t, "Custom::CDKBucketDeployment") {
		markers := js(p)
		if strings.Contains(markers, "DashboardPages") {
			deployed = true
		}
	}
	if !deployed {
		t.Error("the page's files are not put in its bucket")
	}
	found := false
	for _, p := range resources(t, "AWS::S3::BucketPolicy") {
		doc := js(p)
		if strings.Contains(doc, "DashboardPages") && strings.Contains(doc, `"Service":"cloudfront.amazonaws.com"`) && strings.Contains(doc, "AWS:SourceArn") {
			found = true
		}
	}
	if !found {
		t.Error("the pages bucket does not let the distribution (and only it) read")
	}
}

// TestDashboardOnItsOwnDomain: with a domain and its certificate the page
// is served on that name with TLS 1.2 at least, and signing in returns
// there; a domain without a certificate, or a certificate CloudFront
// cannot use, is refused before anything is synthesized.
func TestDashboardOnItsOwnDomain(t *testing.T) {
	const cert = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	tpl, err := synth(t, func(p *Props) { p.DashboardDomain, p.DashboardCertificateARN = "dash.example.com", cert })
	if err != nil {
		t.Fatal(err)
	}
	var dist, client string
	for _, r := range tpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		switch r["Type"] {
		case "AWS::CloudFront::Distribution":
			dist = js(get(r, "Properties", "DistributionConfig"))
		case "AWS::Cognito::UserPoolClient":
			client = js(get(r, "Properties", "CallbackURLs"))
		}
	}
	for _, want := range []string{`"Aliases":["dash.example.com"]`, `"AcmCertificateArn":"` + cert + `"`, `"MinimumProtocolVersion":"TLSv1.2_2021"`} {
		if !strings.Contains(dist, want) {
			t.Errorf("distribution lacks %s: %s", want, dist)
		}
	}
	if !strings.Contains(client, `"https://dash.example.com/"`) {
		t.Errorf("sign-in does not return to the page's domain: %s", client)
	}
	for _, bad := range []Props{
		{DashboardDomain: "dash.example.com"},
		{DashboardDomain: "dash.example.com", DashboardCertificateARN: strings.Replace(cert, "us-east-1", "eu-west-1", 1)},
	} {
		bad.ImageAsset, bad.CommanderAsset = "x", "y"
		if _, err := New(awscdk.NewApp(nil), "Bad", bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
