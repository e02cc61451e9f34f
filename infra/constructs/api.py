"""The REST API of ``functions/routes.py``: POST /predict, GET /model, GET /health and GET /openapi.json on the
predict alias; POST /outcomes on log-outcome."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.config import StageConfig
from functions.routes import ROUTES
from infra.nag import acknowledge
from infra.naming import api_name
from infra.settings import LOG_RETENTION, InfraSettings

JSON = "application/json"
# The functions' error body (functions/errors.py: code, message, errors, request_id) for API Gateway's own answers.
ERROR_TEMPLATE = (
    '{"code":"$context.error.responseType.toLowerCase()","message":$context.error.messageString,'
    '"errors":[],"request_id":"$context.requestId"}'
)
BAD_BODY_TEMPLATE = (
    '{"code":"validation_error","message":"invalid request",'
    '"errors":[{"field":"body","reason":"$util.escapeJavaScript($context.error.validationErrorString)"}],'
    '"request_id":"$context.requestId"}'
)


class PredictionApiConstruct(Construct):
    """IAM (SigV4) on every method, a JSON-object body check, stage throttling, JSON access logs and X-Ray.

    Callers get ``execute-api:Invoke`` from one of three managed policies made here: one for
    predictions (``/predict``, ``/model``, ``/health``, ``/openapi.json``), one for ground truth
    (``/outcomes``), and one that only reads the contract (``/openapi.json``, for code generators).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        predict: lambda_.IFunction,
        log_outcome: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        api = settings.api
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays[LOG_RETENTION[settings.log_retention_days]],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=api_name(config),
            description=f"{config.app_name} {config.stage}: predictions and outcomes for {config.model_name}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=settings.api_cloudwatch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=apigw.StageOptions(
                stage_name=api.stage_name,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # never log request bodies: they are features, maybe personal data
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                throttling_rate_limit=api.rate_limit,
                throttling_burst_limit=api.burst_limit,
                method_options={
                    "/outcomes/POST": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=api.outcomes_rate_limit, throttling_burst_limit=api.outcomes_burst_limit
                    )
                },
            ),
        )
        self.validator = apigw.RequestValidator(
            self,
            "BodyValidator",
            rest_api=self.api,
            request_validator_name="json-object-body",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        json_object = self.api.add_model(
            "JsonObject",
            content_type=JSON,
            model_name="JsonObject",
            description="Any JSON object; the function checks it against the model card and names each bad field",
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT),
        )
        for response_type, template in (
            (apigw.ResponseType.BAD_REQUEST_BODY, BAD_BODY_TEMPLATE),
            (apigw.ResponseType.DEFAULT_4_XX, ERROR_TEMPLATE),
            (apigw.ResponseType.DEFAULT_5_XX, ERROR_TEMPLATE),
        ):
            self.api.add_gateway_response(
                response_type.response_type.replace("_", "-").lower(),
                type=response_type,
                templates={JSON: template},
            )

        integrations = {
            "predict": apigw.LambdaIntegration(predict, allow_test_invoke=False),
            "log_outcome": apigw.LambdaIntegration(log_outcome, allow_test_invoke=False),
        }
        self.methods: dict[str, apigw.Method] = {}
        for route in ROUTES:  # functions/routes.py: the table the handlers and the local gateway read
            part = route.path.removeprefix("/")
            resource = self.api.root.get_resource(part) or self.api.root.add_resource(part)
            self.methods[f"{route.method} {route.path}"] = resource.add_method(
                route.method,
                integrations[route.function],
                request_validator=self.validator if route.has_body else None,
                request_models={JSON: json_object} if route.has_body else None,
            )

        stage = api.stage_name
        policies = {
            "predictions": ("PredictInvokePolicy", "api-predict-invoke"),
            "outcomes": ("OutcomesInvokePolicy", "api-outcomes-invoke"),
            "contract": ("ContractReadPolicy", "api-contract-read"),
        }
        self.invoke_policies: dict[str, iam.ManagedPolicy] = {}
        for caller, (policy_id, name) in policies.items():
            granted = [route for route in ROUTES if caller in route.callers]
            self.invoke_policies[caller] = iam.ManagedPolicy(
                self,
                policy_id,
                managed_policy_name=config.resource_name(name),
                description="Call " + ", ".join(f"{r.method} {r.path}" for r in granted),
                statements=[
                    iam.PolicyStatement(
                        actions=["execute-api:Invoke"],
                        resources=[self.api.arn_for_execute_api(r.method, r.path, stage) for r in granted],
                    )
                ],
            )
        self.predict_invoke_policy = self.invoke_policies["predictions"]
        self.outcomes_invoke_policy = self.invoke_policies["outcomes"]
        self.contract_read_policy = self.invoke_policies["contract"]
        self._acknowledge(settings)

    def _acknowledge(self, settings: InfraSettings) -> None:
        acknowledge(
            self.api,
            "AwsSolutions-APIG3",
            "No WAF web ACL: every method requires SigV4-signed IAM credentials, so only principals holding the"
            " invoke policies reach the functions, and stage throttling bounds their rate. Add a web ACL if the"
            " API is opened to callers outside the account.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "IAM (SigV4) authorization is used instead of a Cognito user pool: the callers are services and"
            " operators with AWS credentials, not end users (infra/README.md, 'Authentication').",
        )
        if settings.api_cloudwatch_role:
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role, which access and execution logging require; this"
                " AWS-maintained policy only allows writing API Gateway's own log groups.",
            )
