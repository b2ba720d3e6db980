package rotatingmysqltest_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func ExampleStore() {
	st := rotatingmysqltest.NewStore()
	_, first, _ := st.CreateSecret("app/db", "one")
	second, _ := st.PutSecretValue("app/db", "two", nil) // AWSCURRENT moves; AWSPREVIOUS follows
	d, _ := st.Describe("app/db")
	fmt.Println(d.VersionIDsToStages[first], d.VersionIDsToStages[second])
	// Output: [AWSPREVIOUS] [AWSCURRENT]
}

func ExampleSecretsManager() {
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		panic(err)
	}
	defer sm.Close()
	sm.Store().CreateSecret("app/db", rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw", "appdb"))
	sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ThrottlingException", Times: 1, Status: 400})

	client := secretsmanager.NewFromConfig(sm.AWSConfig())
	out, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	if err != nil {
		panic(err)
	}
	fmt.Println(aws.ToString(out.SecretString))
	fmt.Println(sm.Calls("GetSecretValue"), "calls: the SDK retried the throttled one")
	// Output:
	// {"dbname":"appdb","engine":"mysql","host":"127.0.0.1","password":"pw","port":3306,"username":"app"}
	// 2 calls: the SDK retried the throttled one
}
