// Command cdk is tapline's CDK app (see deploy/README.md):
//
//	cd deploy/cdk && npx cdk deploy -c opsEmail=ops@example.com -c iotDataEndpoint=https://...
//
// Context values: stackName (Tapline), app (tapline), prefix (tapline),
// database (tapline), shards (0: on-demand), desiredCount (1), maxCount (4),
// thingPrefix (keg-), iotDataEndpoint, opsEmail, rawRetentionDays (365),
// dashboardDomain and dashboardCertificateArn (an ACM certificate in
// us-east-1 for it: the page on that name, with TLS 1.2 at least),
// commanderAsset (../../.tools/dist/commander, built by make deploy-check).
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/tapline/tapline/deploy/cdk/taplinestack"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	str := func(k, def string) string {
		if v := app.Node().TryGetContext(jsii.String(k)); v != nil {
			return fmt.Sprint(v)
		}
		return def
	}
	num := func(k string, def float64) float64 {
		v, err := strconv.ParseFloat(str(k, fmt.Sprint(def)), 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cdk: context %s: %v\n", k, err)
			os.Exit(2)
		}
		return v
	}
	// With credentials the CLI names the account and region; without
	// (an offline synth) the stack is environment-agnostic.
	var env *awscdk.Environment
	if acct, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); acct != "" && region != "" {
		env = &awscdk.Environment{Account: jsii.String(acct), Region: jsii.String(region)}
	}
	_, err := taplinestack.New(app, str("stackName", "Tapline"), taplinestack.Props{
		StackProps: awscdk.StackProps{Env: env},
		App:        str("app", ""), Prefix: str("prefix", ""), Database: str("database", ""),
		Shards: num("shards", 0), DesiredCount: num("desiredCount", 0), MaxCount: num("maxCount", 0),
		ThingPrefix: str("thingPrefix", ""), IoTDataEndpoint: str("iotDataEndpoint", ""), OpsEmail: str("opsEmail", ""),
		PageURL:          str("pageURL", ""),
		RawRetentionDays: num("rawRetentionDays", 0),
		ImageAsset:       str("imageAsset", "../../.tools/dist/image"), CommanderAsset: str("commanderAsset", "../../.tools/dist/commander"),
		DashboardAsset:  str("dashboardAsset", "../../cmd/internal/dashboard/static"),
		DashboardDomain: str("dashboardDomain", ""), DashboardCertificateARN: str("dashboardCertificateArn", ""),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cdk:", err)
		os.Exit(1)
	}
	app.Synth(nil)
}
