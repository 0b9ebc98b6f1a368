package taplinestack

import (
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiot"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/jsii-runtime-go"

	"github.com/tapline/tapline/sinks/command"
)

// LiveTopics is where the service publishes the dashboard's summaries
// (package sinks/live) for app: tapline/live/{app}/.
func LiveTopics(app string) string { return "tapline/live/" + app + "/" }

// liveDashboard adds what the live dashboard needs on AWS:
//
//   - the service publishes its summaries to IoT Core (the task role may
//     publish under the live topics, nothing else);
//   - operators sign in with a Cognito user pool (no self sign-up); the
//     identity pool gives signed-in identities only (no unauthenticated
//     ones) a role that may connect, subscribe to and receive the live
//     and telemetry topics, and invoke the commander's operator URL: a
//     command goes through the commander's policy, never to a device
//     topic (the role has no iot:Publish at all);
//   - the page is served from a private bucket (encrypted with the
//     stack's key) behind CloudFront with origin access control.
//
// IoT Core also wants an IoT policy attached to each Cognito identity
// that connects: DashboardIoTPolicy, the same grants as the role.
func liveDashboard(stack awscdk.Stack, p Props, key awskms.Key, taskRole awsiam.Role, container awsecs.ContainerDefinition, commander awslambda.Function, commanderURL awslambda.FunctionUrl) {
	s := jsii.String
	topics := LiveTopics(p.App)
	arn := func(kind, name string) *string {
		return awscdk.Fn_Sub(s(fmt.Sprintf("arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:%s/%s", kind, name)), nil)
	}
	if p.IoTDataEndpoint != "" {
		container.AddEnvironment(s("TAPLINE_LIVE_ENDPOINT"), s(p.IoTDataEndpoint))
	}
	taskRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: s2("iot:Publish"), Resources: &[]*string{arn("topic", topics+"*")},
	}))

	pages := awss3.NewBucket(stack, s("DashboardPages"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), Encryption: awss3.BucketEncryption_KMS, EncryptionKey: key,
		ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:      jsii.Bool(true), Versioned: jsii.Bool(true), RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	dist := &awscloudfront.DistributionProps{
		DefaultRootObject: s("index.html"),
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:               awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(pages, nil),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
			CachePolicy:          awscloudfront.CachePolicy_CACHING_DISABLED(),
		},
	}
	if p.DashboardDomain != "" {
		// A minimum TLS version takes effect only with a certificate of
		// one's own: CloudFront's default one is fixed at TLSv1.
		dist.DomainNames = &[]*string{s(p.DashboardDomain)}
		dist.Certificate = awscertificatemanager.Certificate_FromCertificateArn(stack, s("DashboardCertificate"), s(p.DashboardCertificateARN))
		dist.MinimumProtocolVersion = awscloudfront.SecurityPolicyProtocol_TLS_V1_2_2021
	}
	cdn := awscloudfront.NewDistribution(stack, s("DashboardCDN"), dist)
	pageURL := awscdk.Fn_Join(s(""), &[]*string{s("https://"), cdn.DistributionDomainName(), s("/")})
	callbacks := []*string{pageURL}
	if p.DashboardDomain != "" {
		pageURL = s("https://" + p.DashboardDomain + "/")
		callbacks = append(callbacks, pageURL)
	}
	users := awscognito.NewUserPool(stack, s("Operators"), &awscognito.UserPoolProps{
		SelfSignUpEnabled: jsii.Bool(false),
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		Mfa:               awscognito.Mfa_OPTIONAL,
		PasswordPolicy:    &awscognito.PasswordPolicy{MinLength: jsii.Number(12)},
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	// The page signs operators in with Cognito's hosted page: the
	// authorization code flow with PKCE, back to the page's own URL.
	domain := users.AddDomain(s("SignIn"), &awscognito.UserPoolDomainOptions{
		CognitoDomain: &awscognito.CognitoDomainOptions{DomainPrefix: awscdk.Fn_Join(s("-"), &[]*string{s("tapline"), s(p.App), stack.Account()})},
	})
	client := users.AddClient(s("Dashboard"), &awscognito.UserPoolClientOptions{
		GenerateSecret: jsii.Bool(false),
		OAuth: &awscognito.OAuthSettings{
			Flows:        &awscognito.OAuthFlows{AuthorizationCodeGrant: jsii.Bool(true)},
			Scopes:       &[]awscognito.OAuthScope{awscognito.OAuthScope_OPENID(), awscognito.OAuthScope_EMAIL()},
			CallbackUrls: &callbacks, LogoutUrls: &callbacks,
		},
	})
	identities := awscognito.NewCfnIdentityPool(stack, s("DashboardIdentities"), &awscognito.CfnIdentityPoolProps{
		AllowUnauthenticatedIdentities: jsii.Bool(false),
		CognitoIdentityProviders: &[]interface{}{&awscognito.CfnIdentityPool_CognitoIdentityProviderProperty{
			ClientId: client.UserPoolClientId(), ProviderName: users.UserPoolProviderName(),
		}},
	})
	viewer := awsiam.NewRole(stack, s("DashboardRole"), &awsiam.RoleProps{
		Description: s("tapline dashboard: read the live and telemetry topics, ask the commander for commands"),
		AssumedBy: awsiam.NewFederatedPrincipal(s("cognito-identity.amazonaws.com"), &map[string]interface{}{
			"StringEquals":           map[string]interface{}{"cognito-identity.amazonaws.com:aud": identities.Ref()},
			"ForAnyValue:StringLike": map[string]interface{}{"cognito-identity.amazonaws.com:amr": "authenticated"},
		}, s("sts:AssumeRoleWithWebIdentity")),
	})
	read := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Actions: s2("iot:Connect"), Resources: &[]*string{arn("client", "tapline-dash-*")}}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Actions: s2("iot:Subscribe"), Resources: &[]*string{arn("topicfilter", topics+"*"), arn("topicfilter", "tapline/telemetry/*")}}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Actions: s2("iot:Receive"), Resources: &[]*string{arn("topic", topics+"*"), arn("topic", "tapline/telemetry/*")}}),
	}
	for _, st := range read {
		viewer.AddToPolicy(st)
	}
	commander.GrantInvokeUrl(viewer)
	awscognito.NewCfnIdentityPoolRoleAttachment(stack, s("DashboardRoleAttachment"), &awscognito.CfnIdentityPoolRoleAttachmentProps{
		IdentityPoolId: identities.Ref(), Roles: map[string]*string{"authenticated": viewer.RoleArn()},
	})
	var doc []interface{}
	for _, st := range read {
		doc = append(doc, st.ToStatementJson())
	}
	awsiot.NewCfnPolicy(stack, s("DashboardIoTPolicy"), &awsiot.CfnPolicyProps{
		PolicyDocument: map[string]interface{}{"Version": "2012-10-17", "Statement": doc},
	})

	if p.DashboardAsset != "" {
		// The page and its config: where IoT Core, the sign-in and the
		// commander are. No CloudFront invalidation (it would need
		// cloudfront:CreateInvalidation on every distribution): the page
		// is served uncached instead.
		awss3deployment.NewBucketDeployment(stack, s("DashboardFiles"), &awss3deployment.BucketDeploymentProps{
			DestinationBucket: pages,
			Sources: &[]awss3deployment.ISource{
				awss3deployment.Source_Asset(s(p.DashboardAsset), nil),
				awss3deployment.Source_JsonData(s("config.json"), map[string]interface{}{
					"app": p.App, "root": topics, "metric": "temp_c", "actions": p.dashboardActions(),
					"aws": map[string]interface{}{
						"region": stack.Region(), "iot_endpoint": p.IoTDataEndpoint,
						"auth_domain": domain.BaseUrl(nil), "client_id": client.UserPoolClientId(),
						"user_pool": users.UserPoolId(), "identity_pool": identities.Ref(), "commander_url": commanderURL.Url(),
					},
				}, nil),
			},
		})
	}
	for name, v := range map[string]*string{"DashboardURL": pageURL,
		"DashboardBucket": pages.BucketName(), "DashboardUserPool": users.UserPoolId(), "DashboardUserPoolClient": client.UserPoolClientId(),
		"DashboardIdentityPool": identities.Ref()} {
		awscdk.NewCfnOutput(stack, s("Out"+name), &awscdk.CfnOutputProps{Value: v})
	}
}

// dashboardActions are the actions the page offers: the command policy's
// allow-list (the commander checks it again).
func (p Props) dashboardActions() []string {
	actions := make([]string, 0, len(command.Default().Actions))
	for a := range command.Default().Actions {
		actions = append(actions, a)
	}
	slices.Sort(actions)
	return actions
}
