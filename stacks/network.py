"""The VPC every in-VPC component (Redis, Lambdas that reach it, SageMaker jobs) lives in."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlops.config import EnvironmentConfig, InterfaceEndpoint, NetworkConfig
from stacks.base import PlatformStack
from stacks.constructs.retention import retention
from stacks.security import removal_policy

_ENDPOINT_SERVICES: dict[InterfaceEndpoint, ec2.InterfaceVpcEndpointAwsService] = {
    InterfaceEndpoint.SAGEMAKER_API: ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    InterfaceEndpoint.SAGEMAKER_RUNTIME: ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    InterfaceEndpoint.STEP_FUNCTIONS: ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    InterfaceEndpoint.LOGS: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    InterfaceEndpoint.SECRETS_MANAGER: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    InterfaceEndpoint.ECR_API: ec2.InterfaceVpcEndpointAwsService.ECR,
    InterfaceEndpoint.ECR_DOCKER: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    InterfaceEndpoint.STS: ec2.InterfaceVpcEndpointAwsService.STS,
    InterfaceEndpoint.MONITORING: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    InterfaceEndpoint.ATHENA: ec2.InterfaceVpcEndpointAwsService.ATHENA,
    InterfaceEndpoint.GLUE: ec2.InterfaceVpcEndpointAwsService.GLUE,
}


class NetworkStack(PlatformStack):
    """VPC with private subnets, the endpoints the platform needs, and flow logs.

    With `nat_gateways: 0` the private subnets are isolated: nothing in them can reach the
    internet, and AWS APIs are reached through gateway (S3, DynamoDB) and interface endpoints.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        data_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        net = env_config.network
        policy = removal_policy(env_config)
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=data_key,
            retention=retention(net.flow_log_retention_days),
            removal_policy=policy,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(str(net.cidr)),
            availability_zones=list(net.availability_zones),
            nat_gateways=net.nat_gateways,
            subnet_configuration=_subnets(net.nat_gateways),
            restrict_default_security_group=True,
            flow_logs={
                "all-traffic": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        if net.interface_endpoints:
            self._interface_endpoints(net)

    def _interface_endpoints(self, net: NetworkConfig) -> None:
        """One security group for all endpoints: HTTPS from inside the VPC, nothing out.

        The rule names the configured CIDR rather than the VPC's CidrBlock attribute so that
        the rule can be checked at synthesis (cdk-nag EC23 cannot resolve the token).
        """
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS from inside the VPC only",
            allow_all_outbound=False,
        )
        endpoint_sg.add_ingress_rule(
            ec2.Peer.ipv4(str(net.cidr)), ec2.Port.tcp(443), "HTTPS from inside the VPC"
        )
        for endpoint in net.interface_endpoints:
            self.vpc.add_interface_endpoint(
                f"{endpoint.value.replace('.', '-')}-endpoint",
                service=_ENDPOINT_SERVICES[endpoint],
                private_dns_enabled=True,
                subnets=ec2.SubnetSelection(subnet_group_name="private"),
                security_groups=[endpoint_sg],
                open=False,
            )


def _subnets(nat_gateways: int) -> list[ec2.SubnetConfiguration]:
    private = ec2.SubnetConfiguration(
        name="private",
        subnet_type=(
            ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_gateways else ec2.SubnetType.PRIVATE_ISOLATED
        ),
        cidr_mask=22,
    )
    if not nat_gateways:
        return [private]
    return [ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=26),
            private]  # fmt: skip
