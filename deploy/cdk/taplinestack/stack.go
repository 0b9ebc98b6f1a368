// Package taplinestack is tapline's AWS architecture as a CDK v2 stack:
// IoT Core topic rule -> Kinesis -> tapline on ECS Fargate (KCL lease
// table in DynamoDB) -> S3 (Parquet, Glue tables with partition
// projection, an Athena workgroup) and SNS -> the commander Lambda ->
// device shadows. Secure by default: one customer-managed KMS key
// encrypts every store, buckets and topics refuse plain HTTP, the VPC has
// no NAT (VPC endpoints only), and every role may do only its job.
package taplinestack

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsathena"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsglue"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiot"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/tapline/tapline/sinks/athena"
	"github.com/tapline/tapline/sinks/layout"
)

// Props configure the stack. The zero value of a field means its default.
type Props struct {
	awscdk.StackProps
	App             string  // KCL application: lease table name, state directory; default "tapline"
	Prefix          string  // S3 key prefix of the datasets; default "tapline"
	Database        string  // Glue database; default "tapline"
	Shards          float64 // provisioned shards; 0: on-demand
	DesiredCount    float64 // tapline tasks at start; default 1
	MaxCount        float64 // autoscaling ceiling; default 4
	ThingPrefix     string  // commands only reach things whose name starts with it; default "keg-"
	IoTDataEndpoint string  // the account's IoT data endpoint (https://...-ats.iot.REGION.amazonaws.com)
	OpsEmail        string  // optional: alarm emails, and alerts of severity warning and critical
	PageURL         string  // optional: an HTTPS endpoint (a pager's SNS integration) for critical alerts only
	ImageAsset      string  // the container's build context (deploy/image.sh)
	CommanderAsset  string  // directory holding the commander's linux/arm64 "bootstrap"
	DashboardAsset  string  // optional: the dashboard page's files (cmd/internal/dashboard/static), put in its bucket
	// DashboardDomain and DashboardCertificateARN (an ACM certificate
	// for it, in us-east-1 as CloudFront requires) serve the page on
	// the operators' own name with TLS 1.2 at least; without them it is
	// served on the distribution's *.cloudfront.net name, whose
	// certificate CloudFront fixes at a TLSv1 minimum.
	DashboardDomain         string
	DashboardCertificateARN string
	RawRetentionDays        float64 // raw telemetry expires after this; default 365
}

// certificateARN is an ACM certificate CloudFront can use.
var certificateARN = regexp.MustCompile(`^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$`)

// Topic filter devices publish telemetry on; the third level is the
// thing name.
const TelemetryTopic = "tapline/telemetry/+"

// RuleSQL shapes a device message into tapline's record: the device id
// is the topic's thing name (an IoT policy lets a thing publish only
// there, so it cannot speak for another), the event time is the
// payload's ts or, without one, the broker's clock. A message of
// readings (package schemas) passes through with its readings, each
// with its own ts: no broker time is added beside them (fields that are
// Undefined are left out of the output).
const RuleSQL = "SELECT topic(3) AS device_id, CASE isUndefined(readings) WHEN true THEN coalesce(ts, timestamp()) ELSE ts END AS ts, metrics, seq, readings FROM 'tapline/telemetry/+'"

func (p *Props) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.App, "tapline")
	def(&p.Prefix, "tapline")
	def(&p.Database, "tapline")
	def(&p.ThingPrefix, "keg-")
	if p.DesiredCount == 0 {
		p.DesiredCount = 1
	}
	if p.MaxCount == 0 {
		p.MaxCount = 4
	}
	if p.RawRetentionDays == 0 {
		p.RawRetentionDays = 365
	}
}

// New builds the stack.
func New(scope constructs.Construct, id string, p Props) (awscdk.Stack, error) {
	p.defaults()
	if p.ImageAsset == "" || p.CommanderAsset == "" {
		return nil, fmt.Errorf("taplinestack: ImageAsset and CommanderAsset are required")
	}
	if (p.DashboardDomain == "") != (p.DashboardCertificateARN == "") {
		return nil, fmt.Errorf("taplinestack: DashboardDomain and DashboardCertificateARN go together")
	}
	if p.DashboardCertificateARN != "" && !certificateARN.MatchString(p.DashboardCertificateARN) {
		return nil, fmt.Errorf("taplinestack: DashboardCertificateARN %q is not an ACM certificate in us-east-1 (CloudFront's region)", p.DashboardCertificateARN)
	}
	if p.PageURL != "" && !strings.HasPrefix(p.PageURL, "https://") {
		return nil, fmt.Errorf("taplinestack: PageURL %q must be https", p.PageURL)
	}
	stack := awscdk.NewStack(scope, &id, &p.StackProps)
	s := jsii.String

	key := awskms.NewKey(stack, s("Key"), &awskms.KeyProps{
		EnableKeyRotation: jsii.Bool(true),
		Description:       s("tapline: stream, lease table, data lake, topics, queues and logs"),
	})
	// Services that use the key on the stack's behalf, each only for this
	// account's resources: CloudWatch Logs for this account's log groups
	// (the encryption context names the group), CloudWatch alarms
	// publishing to the encrypted ops topic, and SNS delivering to the
	// encrypted dead-letter queue of the commander's subscription.
	sourceAccount := map[string]interface{}{"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()}}
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        s("CloudWatchLogsOfThisAccount"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(s(fmt.Sprintf("logs.%s.amazonaws.com", *stack.Region())), nil)},
		Actions:    s2("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"),
		Resources:  s2("*"), // a key policy's resource is the key itself
		Conditions: &map[string]interface{}{"ArnLike": map[string]interface{}{
			"kms:EncryptionContext:aws:logs:arn": awscdk.Fn_Sub(s("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"), nil),
		}},
	}), jsii.Bool(false))
	for _, svc := range []struct{ sid, principal string }{{"CloudWatchAlarmsToTheOpsTopic", "cloudwatch.amazonaws.com"}, {"SNSToTheDeadLetterQueue", "sns.amazonaws.com"}} {
		key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        s(svc.sid),
			Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(s(svc.principal), nil)},
			Actions:    s2("kms:Decrypt", "kms:GenerateDataKey*"),
			Resources:  s2("*"),
			Conditions: &sourceAccount,
		}), jsii.Bool(false))
	}

	// The key that signs alert messages: the service signs, the
	// commander verifies, so an alert that did not come from the service
	// (a forged publish, a planted dead letter) commands nothing.
	macKey := awssecretsmanager.NewSecret(stack, s("AlertMACKey"), &awssecretsmanager.SecretProps{
		Description:   s("tapline: HMAC key of alert messages (sns.mac_key)"),
		EncryptionKey: key,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength: jsii.Number(64), ExcludePunctuation: jsii.Bool(true),
		},
	})

	// Kinesis: devices' records, partitioned by device id.
	streamProps := &awskinesis.StreamProps{
		Encryption: awskinesis.StreamEncryption_KMS, EncryptionKey: key,
		RetentionPeriod: awscdk.Duration_Hours(jsii.Number(48)),
		StreamMode:      awskinesis.StreamMode_ON_DEMAND,
	}
	if p.Shards > 0 {
		streamProps.StreamMode, streamProps.ShardCount = awskinesis.StreamMode_PROVISIONED, jsii.Number(p.Shards)
	}
	stream := awskinesis.NewStream(stack, s("Stream"), streamProps)

	// The KCL lease table, pre-created with the schema vmware-go-kcl-v2
	// uses (hash key ShardID), so the service needs no CreateTable.
	leases := awsdynamodb.NewTable(stack, s("Leases"), &awsdynamodb.TableProps{
		TableName:    s(p.App),
		PartitionKey: &awsdynamodb.Attribute{Name: s("ShardID"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:   awsdynamodb.TableEncryption_CUSTOMER_MANAGED, EncryptionKey: key,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		RemovalPolicy:                    awscdk.RemovalPolicy_DESTROY, // leases only: the data is in S3
	})

	// The data lake.
	lake := awss3.NewBucket(stack, s("Lake"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_KMS, EncryptionKey: key, BucketKeyEnabled: jsii.Bool(true),
		EnforceSSL: jsii.Bool(true), MinimumTLSVersion: jsii.Number(1.2),
		Versioned: jsii.Bool(false), // objects are written once (If-None-Match)
		LifecycleRules: &[]*awss3.LifecycleRule{
			{Id: s("raw"), Prefix: s(p.Prefix + "/raw/"), Expiration: awscdk.Duration_Days(jsii.Number(p.RawRetentionDays)),
				Transitions: &[]*awss3.Transition{{StorageClass: awss3.StorageClass_INTELLIGENT_TIERING(), TransitionAfter: awscdk.Duration_Days(jsii.Number(0))}}},
			// Shard state matters until the next checkpoint; the first-start
			// marker (layout.App) must never expire.
			{Id: s("state"), Prefix: s(layout.Under(p.Prefix, layout.State) + "/"), Expiration: awscdk.Duration_Days(jsii.Number(14))},
			{Id: s("athena-results"), Prefix: s("athena-results/"), Expiration: awscdk.Duration_Days(jsii.Number(30))},
			{Id: s("incomplete-uploads"), AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1))},
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})

	// Glue tables with partition projection: the same definitions as
	// `tapline athena-ddl` (package athena), located in this bucket.
	tables, err := athena.Tables("placeholder-bucket", p.Prefix, "2024-01-01")
	if err != nil {
		return nil, err
	}
	db := awsglue.NewCfnDatabase(stack, s("Database"), &awsglue.CfnDatabaseProps{
		CatalogId:     stack.Account(),
		DatabaseInput: &awsglue.CfnDatabase_DatabaseInputProperty{Name: s(p.Database), Description: s("tapline's datasets")},
	})
	for _, t := range tables {
		located := func(v string) *string {
			return awscdk.Fn_Join(s(""), &[]*string{s("s3://"), lake.BucketName(), s("/" + strings.TrimPrefix(v, "s3://placeholder-bucket/"))})
		}
		params := map[string]*string{"classification": s("parquet"), "EXTERNAL": s("TRUE")}
		for k, v := range t.Projection {
			if strings.HasPrefix(v, "s3://placeholder-bucket/") {
				params[k] = located(v)
			} else {
				params[k] = s(v)
			}
		}
		var cols []interface{}
		for _, c := range t.Columns {
			cols = append(cols, &awsglue.CfnTable_ColumnProperty{Name: s(c.Name), Type: s(c.Type)})
		}
		var parts []interface{}
		for _, c := range t.Partitions {
			parts = append(parts, &awsglue.CfnTable_ColumnProperty{Name: s(c.Name), Type: s(c.Type)})
		}
		tbl := awsglue.NewCfnTable(stack, s("Table"+camel(t.Name)), &awsglue.CfnTableProps{
			CatalogId: stack.Account(), DatabaseName: s(p.Database),
			TableInput: &awsglue.CfnTable_TableInputProperty{
				Name: s(t.Name), TableType: s("EXTERNAL_TABLE"), Parameters: params,
				PartitionKeys: &parts,
				StorageDescriptor: &awsglue.CfnTable_StorageDescriptorProperty{
					Columns: &cols, Location: located(t.Location),
					InputFormat:  s("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
					OutputFormat: s("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"),
					SerdeInfo:    &awsglue.CfnTable_SerdeInfoProperty{SerializationLibrary: s("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")},
				},
			},
		})
		tbl.Node().AddDependency(db)
	}
	// The views analysts query (package athena): Athena views are Glue
	// tables of type VIRTUAL_VIEW holding the Trino SQL. They keep the
	// logical ids the tables of the same names had before compaction,
	// so an update turns those tables into views in place.
	views, err := athena.Views(p.Database)
	if err != nil {
		return nil, err
	}
	for _, v := range views {
		text, err := prestoView(p.Database, v)
		if err != nil {
			return nil, err
		}
		var cols []interface{}
		for _, c := range v.Columns {
			cols = append(cols, &awsglue.CfnTable_ColumnProperty{Name: s(c.Name), Type: s(c.Type)})
		}
		view := awsglue.NewCfnTable(stack, s("Table"+camel(v.Name)), &awsglue.CfnTableProps{
			CatalogId: stack.Account(), DatabaseName: s(p.Database),
			TableInput: &awsglue.CfnTable_TableInputProperty{
				Name: s(v.Name), TableType: s("VIRTUAL_VIEW"),
				Parameters:       map[string]*string{"presto_view": s("true"), "comment": s("Presto View")},
				ViewOriginalText: s(text), ViewExpandedText: s("/* Presto View */"),
				StorageDescriptor: &awsglue.CfnTable_StorageDescriptorProperty{
					Columns: &cols, SerdeInfo: &awsglue.CfnTable_SerdeInfoProperty{},
				},
			},
		})
		view.Node().AddDependency(db)
	}
	awsathena.NewCfnWorkGroup(stack, s("WorkGroup"), &awsathena.CfnWorkGroupProps{
		Name: s(p.App), RecursiveDeleteOption: jsii.Bool(true),
		WorkGroupConfiguration: &awsathena.CfnWorkGroup_WorkGroupConfigurationProperty{
			EnforceWorkGroupConfiguration: jsii.Bool(true), PublishCloudWatchMetricsEnabled: jsii.Bool(true),
			ResultConfiguration: &awsathena.CfnWorkGroup_ResultConfigurationProperty{
				OutputLocation:          awscdk.Fn_Join(s(""), &[]*string{s("s3://"), lake.BucketName(), s("/athena-results/")}),
				EncryptionConfiguration: &awsathena.CfnWorkGroup_EncryptionConfigurationProperty{EncryptionOption: s("SSE_KMS"), KmsKey: key.KeyArn()},
			},
		},
	})

	// Alerts (to the commander and ops) and operational alarms (ops).
	alerts := awssns.NewTopic(stack, s("Alerts"), &awssns.TopicProps{MasterKey: key, EnforceSSL: jsii.Bool(true)})
	ops := awssns.NewTopic(stack, s("Ops"), &awssns.TopicProps{MasterKey: key, EnforceSSL: jsii.Bool(true)})
	// Alerts are routed by their severity attribute (every alert carries
	// it): ops are mailed warning and critical ones, a pager gets critical
	// ones only; info alerts stay in the alerts dataset. The commander
	// hears all and its policy decides.
	severity := func(levels ...string) *map[string]awssns.SubscriptionFilter {
		var allow []*string
		for _, l := range levels {
			allow = append(allow, s(l))
		}
		return &map[string]awssns.SubscriptionFilter{"severity": awssns.SubscriptionFilter_StringFilter(&awssns.StringConditions{Allowlist: &allow})}
	}
	if p.OpsEmail != "" {
		alerts.AddSubscription(awssnssubscriptions.NewEmailSubscription(s(p.OpsEmail), &awssnssubscriptions.EmailSubscriptionProps{FilterPolicy: severity("critical", "warning")}))
		ops.AddSubscription(awssnssubscriptions.NewEmailSubscription(s(p.OpsEmail), nil))
	}
	if p.PageURL != "" {
		alerts.AddSubscription(awssnssubscriptions.NewUrlSubscription(s(p.PageURL), &awssnssubscriptions.UrlSubscriptionProps{
			Protocol: awssns.SubscriptionProtocol_HTTPS, FilterPolicy: severity("critical")}))
	}

	// Devices: a thing connects as itself and publishes only its own
	// telemetry (the rule takes device_id from the topic), and hears only
	// its own commands and shadow. Attach this policy to each thing's
	// certificate.
	thing := "${iot:Connection.Thing.ThingName}"
	iotARN := func(kind, rest string) *string {
		return awscdk.Fn_Sub(s("arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"+kind+"/"+rest), &map[string]*string{"ThingName": s(thing)})
	}
	awsiot.NewCfnPolicy(stack, s("DevicePolicy"), &awsiot.CfnPolicyProps{
		PolicyDocument: map[string]interface{}{
			"Version": "2012-10-17",
			"Statement": []interface{}{
				map[string]interface{}{"Effect": "Allow", "Action": "iot:Connect", "Resource": iotARN("client", "${ThingName}"),
					"Condition": map[string]interface{}{"Bool": map[string]interface{}{"iot:Connection.Thing.IsAttached": "true"}}},
				map[string]interface{}{"Effect": "Allow", "Action": "iot:Publish", "Resource": []interface{}{
					iotARN("topic", "tapline/telemetry/${ThingName}"),
					iotARN("topic", "$aws/things/${ThingName}/shadow/update")}},
				map[string]interface{}{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": []interface{}{
					iotARN("topicfilter", "tapline/commands/${ThingName}"),
					iotARN("topicfilter", "$aws/things/${ThingName}/shadow/update/delta")}},
				map[string]interface{}{"Effect": "Allow", "Action": "iot:Receive", "Resource": []interface{}{
					iotARN("topic", "tapline/commands/${ThingName}"),
					iotARN("topic", "$aws/things/${ThingName}/shadow/update/delta")}},
			},
		},
	})

	// IoT Core -> Kinesis.
	ruleLogs := awslogs.NewLogGroup(stack, s("RuleErrors"), &awslogs.LogGroupProps{Retention: awslogs.RetentionDays_ONE_MONTH, EncryptionKey: key})
	ruleRole := awsiam.NewRole(stack, s("RuleRole"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(s("iot.amazonaws.com"), nil)})
	stream.GrantWrite(ruleRole)
	ruleLogs.GrantWrite(ruleRole)
	awsiot.NewCfnTopicRule(stack, s("TelemetryRule"), &awsiot.CfnTopicRuleProps{
		TopicRulePayload: &awsiot.CfnTopicRule_TopicRulePayloadProperty{
			Sql: s(RuleSQL), AwsIotSqlVersion: s("2016-03-23"), RuleDisabled: jsii.Bool(false),
			Actions: &[]interface{}{&awsiot.CfnTopicRule_ActionProperty{Kinesis: &awsiot.CfnTopicRule_KinesisActionProperty{
				StreamName: stream.StreamName(), PartitionKey: s("${topic(3)}"), RoleArn: ruleRole.RoleArn(),
			}}},
			ErrorAction: &awsiot.CfnTopicRule_ActionProperty{CloudwatchLogs: &awsiot.CfnTopicRule_CloudwatchLogsActionProperty{
				LogGroupName: ruleLogs.LogGroupName(), RoleArn: ruleRole.RoleArn(),
			}},
		},
	})

	// The commander Lambda.
	dlq := awssqs.NewQueue(stack, s("CommanderDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: key, EnforceSSL: jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	commander := awslambda.NewFunction(stack, s("Commander"), &awslambda.FunctionProps{
		Runtime: awslambda.Runtime_PROVIDED_AL2023(), Architecture: awslambda.Architecture_ARM_64(),
		Handler: s("bootstrap"), Code: awslambda.Code_FromAsset(s(p.CommanderAsset), nil),
		Timeout: awscdk.Duration_Seconds(jsii.Number(30)), MemorySize: jsii.Number(128),
		Environment: &map[string]*string{
			"TAPLINE_COMMAND_BACKEND":   s("shadow"),
			"TAPLINE_ENDPOINTS_IOTDATA": s(p.IoTDataEndpoint),
			"TAPLINE_ALERTS_TOPIC_ARN":  alerts.TopicArn(),
			"TAPLINE_THING_PREFIX":      s(p.ThingPrefix),
			// A dynamic reference: CloudFormation resolves it at deploy
			// time, the template holds only the secret's name.
			"TAPLINE_ALERT_MAC_KEY": macKey.SecretValue().UnsafeUnwrap(),
		},
		DeadLetterQueue: dlq, RetryAttempts: jsii.Number(2),
		LogGroup: awslogs.NewLogGroup(stack, s("CommanderLogs"), &awslogs.LogGroupProps{Retention: awslogs.RetentionDays_ONE_MONTH, EncryptionKey: key}),
	})
	commander.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   s2("iot:UpdateThingShadow"),
		Resources: &[]*string{awscdk.Fn_Sub(s("arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:thing/"+p.ThingPrefix+"*"), nil)},
	}))
	commander.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   s2("iot:Publish"),
		Resources: &[]*string{awscdk.Fn_Sub(s("arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/tapline/commands/"+p.ThingPrefix+"*"), nil)},
	}))
	alerts.AddSubscription(awssnssubscriptions.NewLambdaSubscription(commander, &awssnssubscriptions.LambdaSubscriptionProps{DeadLetterQueue: dlq}))
	// Operators ask for commands through this URL, signed with their IAM
	// credentials (lambda:InvokeFunctionUrl); the commander takes the
	// operator from the signature, never from the request.
	// Browsers call it from the dashboard's page (another origin): CORS
	// lets them, IAM authentication (SigV4) still decides who may.
	operatorURL := commander.AddFunctionUrl(&awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_AWS_IAM,
		Cors: &awslambda.FunctionUrlCorsOptions{AllowedOrigins: s2("*"), AllowedMethods: &[]awslambda.HttpMethod{awslambda.HttpMethod_POST},
			AllowedHeaders: s2("authorization", "content-type", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")}})

	// The network: private subnets, no NAT; VPC endpoints for everything
	// the task talks to.
	vpc := awsec2.NewVpc(stack, s("Vpc"), &awsec2.VpcProps{
		MaxAzs: jsii.Number(2), NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: s("private"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)}},
	})
	// Each endpoint serves only this account's principals (instead of the
	// default full access): credentials from elsewhere cannot use the
	// VPC's way out. ECR's image layers (an AWS bucket) are fetched with
	// the execution role, a principal of this account.
	ownPrincipals := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlyThisAccountsPrincipals"), Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions: s2("*"), Resources: s2("*"),
		Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"aws:PrincipalAccount": stack.Account()}},
	})
	vpc.AddGatewayEndpoint(s("S3"), &awsec2.GatewayVpcEndpointOptions{Service: awsec2.GatewayVpcEndpointAwsService_S3()}).AddToPolicy(ownPrincipals)
	vpc.AddGatewayEndpoint(s("DynamoDB"), &awsec2.GatewayVpcEndpointOptions{Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB()}).AddToPolicy(ownPrincipals)
	for name, svc := range map[string]awsec2.InterfaceVpcEndpointAwsService{
		"Kinesis": awsec2.InterfaceVpcEndpointAwsService_KINESIS_STREAMS(), "SNS": awsec2.InterfaceVpcEndpointAwsService_SNS(),
		"Logs": awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS(), "KMS": awsec2.InterfaceVpcEndpointAwsService_KMS(),
		"ECR": awsec2.InterfaceVpcEndpointAwsService_ECR(), "ECRDocker": awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER(),
		"SecretsManager": awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER(), // the MAC key, fetched at task start
	} {
		vpc.AddInterfaceEndpoint(s(name), &awsec2.InterfaceVpcEndpointOptions{Service: svc, PrivateDnsEnabled: jsii.Bool(true)}).AddToPolicy(ownPrincipals)
	}

	// The service.
	logs := awslogs.NewLogGroup(stack, s("ServiceLogs"), &awslogs.LogGroupProps{Retention: awslogs.RetentionDays_ONE_MONTH, EncryptionKey: key})
	taskRole := awsiam.NewRole(stack, s("TaskRole"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(s("ecs-tasks.amazonaws.com"), nil)})
	execRole := awsiam.NewRole(stack, s("ExecutionRole"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(s("ecs-tasks.amazonaws.com"), nil)})
	stream.GrantRead(taskRole)
	leases.GrantReadWriteData(taskRole)
	alerts.GrantPublish(taskRole)
	// Only the service publishes alerts: the commander acts on them.
	alerts.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlyTheServicePublishes"), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    s2("sns:Publish"), Resources: &[]*string{alerts.TopicArn()},
		Conditions: &map[string]interface{}{"ArnNotEquals": map[string]interface{}{"aws:PrincipalArn": taskRole.RoleArn()}},
	}))
	taskRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   s2("s3:GetObject", "s3:PutObject"),
		Resources: &[]*string{lake.ArnForObjects(s(p.Prefix + "/*"))},
	}))
	taskRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:ListBucket"), Resources: &[]*string{lake.BucketArn()},
		Conditions: &map[string]interface{}{"StringLike": map[string]interface{}{"s3:prefix": []string{p.Prefix + "/*"}}},
	}))
	key.Grant(taskRole, s("kms:Decrypt"), s("kms:GenerateDataKey"))
	// What the service reads back and acts on (dead-lettered alerts it
	// redrives, the shard state it restores, the first start) only the
	// service writes, whatever else other policies in the account grant.
	lake.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlyTheServiceWritesWhatItReadsBack"), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    s2("s3:PutObject", "s3:DeleteObject"),
		Resources: &[]*string{
			lake.ArnForObjects(s(layout.Under(p.Prefix, layout.DeadLetter) + "/*")),
			lake.ArnForObjects(s(layout.Under(p.Prefix, layout.State) + "/*")),
			lake.ArnForObjects(s(layout.Under(p.Prefix, layout.App) + "/*")),
		},
		Conditions: &map[string]interface{}{"ArnNotEquals": map[string]interface{}{"aws:PrincipalArn": taskRole.RoleArn()}},
	}))

	// Silences (tapline silence) are written by operators who assume this
	// role, read by the service, and written by nobody else: a silence
	// keeps alerts and commands from happening.
	silencers := awsiam.NewRole(stack, s("Silencers"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewAccountRootPrincipal(),
		Description: s("tapline silence add|list|expire: writes and reads the service's silences, nothing else"),
	})
	silencesDir := layout.Silences(p.Prefix, p.App)
	silencers.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:GetObject", "s3:PutObject"), Resources: &[]*string{lake.ArnForObjects(s(silencesDir + "*"))},
	}))
	silencers.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:ListBucket"), Resources: &[]*string{lake.BucketArn()},
		Conditions: &map[string]interface{}{"StringLike": map[string]interface{}{"s3:prefix": []string{silencesDir + "*"}}},
	}))
	key.Grant(silencers, s("kms:Decrypt"), s("kms:GenerateDataKey"))
	lake.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlySilencersWriteSilences"), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    s2("s3:PutObject", "s3:DeleteObject"),
		Resources:  &[]*string{lake.ArnForObjects(s(layout.Under(p.Prefix, layout.SilencesDir) + "/*"))},
		Conditions: &map[string]interface{}{"ArnNotEquals": map[string]interface{}{"aws:PrincipalArn": []*string{taskRole.RoleArn(), silencers.RoleArn()}}},
	}))
	awscdk.NewCfnOutput(stack, s("SilencersRoleArn"), &awscdk.CfnOutputProps{Value: silencers.RoleArn(), Description: s("assume it to run tapline silence")})

	// Compaction (tapline compact, hourly below) rewrites closed hours:
	// it reads the datasets, writes under compacted/ and deletes the files
	// a committed manifest replaced. A manifest decides what the views
	// show, so only this role writes under compacted/ and only it deletes
	// dataset files.
	compactorRole := awsiam.NewRole(stack, s("CompactorRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(s("ecs-tasks.amazonaws.com"), nil),
		Description: s("tapline compact: rewrites closed hours of the datasets"),
	})
	var datasetObjects, compactedObjects []*string
	for _, ds := range []string{layout.Raw, layout.Windows, layout.Alerts} {
		datasetObjects = append(datasetObjects, lake.ArnForObjects(s(layout.Under(p.Prefix, ds)+"/*")))
	}
	compactedObjects = append(compactedObjects, lake.ArnForObjects(s(layout.Under(p.Prefix, layout.Compacted)+"/*")))
	compactorRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:GetObject", "s3:DeleteObject"), Resources: &datasetObjects,
	}))
	compactorRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:GetObject", "s3:PutObject", "s3:DeleteObject"), Resources: &compactedObjects,
	}))
	var listed []string
	for _, ds := range append([]string{layout.Raw, layout.Windows, layout.Alerts}, layout.Compacted) {
		listed = append(listed, layout.Under(p.Prefix, ds)+"/*")
	}
	compactorRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("s3:ListBucket"), Resources: &[]*string{lake.BucketArn()},
		Conditions: &map[string]interface{}{"StringLike": map[string]interface{}{"s3:prefix": listed}},
	}))
	key.Grant(compactorRole, s("kms:Decrypt"), s("kms:GenerateDataKey"))
	lake.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlyTheCompactorWritesCompacted"), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    s2("s3:PutObject", "s3:DeleteObject"),
		Resources:  &compactedObjects,
		Conditions: &map[string]interface{}{"ArnNotEquals": map[string]interface{}{"aws:PrincipalArn": compactorRole.RoleArn()}},
	}))
	lake.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: s("OnlyTheCompactorDeletesData"), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    s2("s3:DeleteObject"),
		Resources:  &datasetObjects,
		Conditions: &map[string]interface{}{"ArnNotEquals": map[string]interface{}{"aws:PrincipalArn": compactorRole.RoleArn()}},
	}))

	cluster := awsecs.NewCluster(stack, s("Cluster"), &awsecs.ClusterProps{Vpc: vpc})
	image := awsecs.ContainerImage_FromAsset(s(p.ImageAsset), nil) // FROM scratch: the binary and the rules
	task := awsecs.NewFargateTaskDefinition(stack, s("Task"), &awsecs.FargateTaskDefinitionProps{
		Cpu: jsii.Number(1024), MemoryLimitMiB: jsii.Number(4096), TaskRole: taskRole, ExecutionRole: execRole,
		RuntimePlatform: &awsecs.RuntimePlatform{CpuArchitecture: awsecs.CpuArchitecture_ARM64(), OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX()},
	})
	container := task.AddContainer(s("tapline"), &awsecs.ContainerDefinitionOptions{
		Image:   image,
		Command: s2("run"),
		Environment: &map[string]*string{
			"TAPLINE_APP": s(p.App), "TAPLINE_STREAM": stream.StreamName(),
			"TAPLINE_S3_BUCKET": lake.BucketName(), "TAPLINE_S3_PREFIX": s(p.Prefix),
			"TAPLINE_SNS_TOPIC_ARN": alerts.TopicArn(), "TAPLINE_RULES_FILE": s("/etc/tapline/rules.yml"),
			"TAPLINE_SHUTDOWN_TIMEOUT": s("100s"), "TAPLINE_KCL_SHARD_SYNC": s("1s"),
		},
		Secrets:      &map[string]awsecs.Secret{"TAPLINE_SNS_MAC_KEY": awsecs.Secret_FromSecretsManager(macKey, nil)},
		Logging:      awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{StreamPrefix: s("tapline"), LogGroup: logs}),
		StopTimeout:  awscdk.Duration_Seconds(jsii.Number(120)),
		PortMappings: &[]*awsecs.PortMapping{{ContainerPort: jsii.Number(8080)}},
		HealthCheck: &awsecs.HealthCheck{
			Command:  s2("CMD", "/tapline", "healthcheck"),
			Interval: awscdk.Duration_Seconds(jsii.Number(30)), Timeout: awscdk.Duration_Seconds(jsii.Number(5)),
			Retries: jsii.Number(3), StartPeriod: awscdk.Duration_Seconds(jsii.Number(60)),
		},
	})
	service := awsecs.NewFargateService(stack, s("Service"), &awsecs.FargateServiceProps{
		Cluster: cluster, TaskDefinition: task, DesiredCount: jsii.Number(p.DesiredCount),
		VpcSubnets:        &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Rollback: jsii.Bool(true)},
		MinHealthyPercent: jsii.Number(100), MaxHealthyPercent: jsii.Number(200),
	})
	scaling := service.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{MinCapacity: jsii.Number(p.DesiredCount), MaxCapacity: jsii.Number(p.MaxCount)})
	scaling.ScaleOnCpuUtilization(s("Cpu"), &awsecs.CpuUtilizationScalingProps{TargetUtilizationPercent: jsii.Number(60)})
	iteratorAge := stream.MetricGetRecordsIteratorAgeMilliseconds(&awscloudwatch.MetricOptions{Statistic: s("Maximum"), Period: awscdk.Duration_Minutes(jsii.Number(1))})
	scaling.ScaleOnMetric(s("IteratorAge"), &awsapplicationautoscaling.BasicStepScalingPolicyProps{
		Metric: iteratorAge, AdjustmentType: awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		ScalingSteps: &[]*awsapplicationautoscaling.ScalingInterval{
			{Upper: jsii.Number(10_000), Change: jsii.Number(-1)},
			{Lower: jsii.Number(60_000), Change: jsii.Number(1)},
			{Lower: jsii.Number(300_000), Change: jsii.Number(2)},
		},
	})

	// Alarms, to the ops topic.
	alarm := func(id string, m awscloudwatch.IMetric, threshold float64, what string) {
		a := awscloudwatch.NewAlarm(stack, s(id), &awscloudwatch.AlarmProps{
			Metric: m, Threshold: jsii.Number(threshold), EvaluationPeriods: jsii.Number(3),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING, AlarmDescription: s(what),
		})
		a.AddAlarmAction(awscloudwatchactions.NewSnsAction(ops))
	}
	alarm("IteratorAgeAlarm", iteratorAge, 120_000, "tapline is more than 2 minutes behind the stream")
	metricFrom := func(id, name, pattern, value string) awscloudwatch.IMetric {
		awslogs.NewMetricFilter(stack, s(id), &awslogs.MetricFilterProps{
			LogGroup: logs, MetricNamespace: s("Tapline"), MetricName: s(name),
			FilterPattern: awslogs.FilterPattern_Literal(s(pattern)), MetricValue: s(value),
		})
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{Namespace: s("Tapline"), MetricName: s(name), Statistic: s("Sum"), Period: awscdk.Duration_Minutes(jsii.Number(5))})
	}
	alarm("ProcessingErrorsAlarm", metricFrom("ErrorLines", "ProcessingErrors", `{ $.level = "ERROR" }`, "1"), 0, "tapline logged errors (shard failures, failed checkpoints)")
	alarm("DeadLettersAlarm", metricFrom("DeadLetterLines", "DeadLetters", `{ $.msg = "batch committed" && $.dead_letters > 0 }`, "$.dead_letters"), 1000, "more than 1,000 records dead-lettered in 5 minutes")
	alarm("AlertsDeadLetteredAlarm", metricFrom("AlertDeadLetterLines", "AlertsDeadLettered", `{ $.msg = "alert dead-lettered" }`, "1"), 0, "alerts SNS refused are in S3: run tapline redrive-alerts once SNS accepts again (deploy/README.md)")
	alarm("CommanderErrorsAlarm", commander.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5))}), 0, "the commander Lambda failed")
	alarm("CommanderDLQAlarm", dlq.MetricApproximateNumberOfMessagesVisible(nil), 0, "alerts the commander could not handle")

	for name, v := range map[string]*string{"Bucket": lake.BucketName(), "Stream": stream.StreamName(), "AlertsTopic": alerts.TopicArn(), "LeaseTable": leases.TableName(), "Commander": commander.FunctionName(), "OperatorURL": operatorURL.Url()} {
		awscdk.NewCfnOutput(stack, s("Out"+name), &awscdk.CfnOutputProps{Value: v})
	}
	// tapline compact, hourly: hours that ended two hours ago and more
	// (beyond the allowed lateness and the longest window), deletions of
	// what the previous run replaced. It holds one partition in memory.
	compactTask := awsecs.NewFargateTaskDefinition(stack, s("CompactTask"), &awsecs.FargateTaskDefinitionProps{
		Cpu: jsii.Number(1024), MemoryLimitMiB: jsii.Number(8192), TaskRole: compactorRole, ExecutionRole: execRole,
		RuntimePlatform: &awsecs.RuntimePlatform{CpuArchitecture: awsecs.CpuArchitecture_ARM64(), OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX()},
	})
	compactTask.AddContainer(s("compact"), &awsecs.ContainerDefinitionOptions{
		Image:   image,
		Command: s2("compact", "-settle", "2h"),
		Environment: &map[string]*string{
			// The service's configuration, of which compaction reads the
			// bucket and prefix (the stream only satisfies its validation).
			"TAPLINE_APP": s(p.App), "TAPLINE_STREAM": stream.StreamName(),
			"TAPLINE_S3_BUCKET": lake.BucketName(), "TAPLINE_S3_PREFIX": s(p.Prefix),
		},
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{StreamPrefix: s("compact"), LogGroup: logs}),
	})
	awsevents.NewRule(stack, s("CompactSchedule"), &awsevents.RuleProps{
		Description: s("tapline compact: rewrite closed hours for Athena"),
		Schedule:    awsevents.Schedule_Cron(&awsevents.CronOptions{Minute: s("20")}),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewEcsTask(&awseventstargets.EcsTaskProps{
			Cluster: cluster, TaskDefinition: compactTask, TaskCount: jsii.Number(1),
			SubnetSelection: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		})},
	})

	liveDashboard(stack, p, key, taskRole, container, commander, operatorURL)

	return stack, nil
}

func s2(v ...string) *[]*string {
	out := make([]*string, len(v))
	for i := range v {
		out[i] = jsii.String(v[i])
	}
	return &out
}

// camel turns a table name into a construct id: raw_landing → RawLanding.
func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// prestoView is the text Athena keeps for a view in Glue: the SQL and
// its columns as JSON, base64-encoded in a comment.
func prestoView(database string, v athena.View) (string, error) {
	type column struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	var cols []column
	for _, c := range v.Columns {
		t, ok := prestoType[c.Type]
		if !ok {
			return "", fmt.Errorf("view %s: no Presto type for %s", v.Name, c.Type)
		}
		cols = append(cols, column{c.Name, t})
	}
	js, err := json.Marshal(map[string]any{"originalSql": v.SQL, "catalog": "awsdatacatalog", "schema": database, "columns": cols})
	if err != nil {
		return "", err
	}
	return "/* Presto View: " + base64.StdEncoding.EncodeToString(js) + " */", nil
}

// prestoType is the Trino type of a Hive column type in a view.
var prestoType = map[string]string{
	"string": "varchar", "timestamp": "timestamp(3)", "bigint": "bigint", "double": "double",
	"binary": "varbinary", "map<string,double>": "map(varchar,double)", "map<string,string>": "map(varchar,varchar)",
}
