"""Engine handlers for the platform's managed services that moto's CloudFormation skips.

SageMaker model package groups, the Glue catalog, Athena workgroups, EventBridge Scheduler and
the EKS cluster are created in moto's backends through the AWS API, so every later API call
(registering model versions, reading the catalog, listing schedules) works as on AWS.

ElastiCache and the Kubernetes objects have no emulated service behind them: they are recorded
(`Created.recorded`), and ElastiCache endpoints resolve to the configured local Redis so that
`Fn::GetAtt [Cache, PrimaryEndPoint.Address]` in a template yields an address the platform can
really connect to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from localaws.resources import Created, ResourceContext, cfn_tag_list, handler


def _arn(context: ResourceContext, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{context.region}:{context.account_id}:{resource}"


@handler("AWS::SageMaker::ModelPackageGroup")
def model_package_group(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("ModelPackageGroupName", context.physical_name)
    sagemaker = context.client("sagemaker")
    request: dict[str, Any] = {"ModelPackageGroupName": name, "Tags": cfn_tag_list(props)}
    if "ModelPackageGroupDescription" in props:
        request["ModelPackageGroupDescription"] = props["ModelPackageGroupDescription"]
    arn = sagemaker.create_model_package_group(**request)["ModelPackageGroupArn"]
    described = sagemaker.describe_model_package_group(ModelPackageGroupName=name)
    return Created(
        physical_id=arn,
        attributes={
            "ModelPackageGroupArn": arn,
            "ModelPackageGroupStatus": described.get("ModelPackageGroupStatus", "Completed"),
            "CreationTime": str(described.get("CreationTime", "")),
        },
    )


@handler("AWS::Glue::Database")
def glue_database(context: ResourceContext) -> Created:
    database_input = dict(context.properties["DatabaseInput"])
    database_input.setdefault("Name", context.physical_name.lower().replace("-", "_"))
    context.client("glue").create_database(DatabaseInput=database_input)
    return Created(physical_id=database_input["Name"])


@handler("AWS::Glue::Table")
def glue_table(context: ResourceContext) -> Created:
    props = context.properties
    table_input = dict(props["TableInput"])
    table_input.setdefault("Name", context.physical_name.lower().replace("-", "_"))
    context.client("glue").create_table(DatabaseName=props["DatabaseName"], TableInput=table_input)
    return Created(physical_id=table_input["Name"])


@handler("AWS::Athena::WorkGroup")
def athena_workgroup(context: ResourceContext) -> Created:
    props = context.properties
    name = props["Name"]
    context.client("athena").create_work_group(
        Name=name,
        Configuration=props.get("WorkGroupConfiguration", {}),
        Description=props.get("Description", ""),
        Tags=cfn_tag_list(props),
    )
    return Created(physical_id=name, attributes={"CreationTime": ""})


@handler("AWS::Scheduler::ScheduleGroup")
def schedule_group(context: ResourceContext) -> Created:
    name = context.properties.get("Name", context.physical_name)
    arn = context.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
    return Created(physical_id=name, attributes={"Arn": arn, "State": "ACTIVE"})


@handler("AWS::Scheduler::Schedule")
def schedule(context: ResourceContext) -> Created:
    """Stored in moto's scheduler; the engine reads it back to run the target on demand."""
    props = dict(context.properties)
    name = props.pop("Name", context.physical_name)
    arn = context.client("scheduler").create_schedule(Name=name, **props)["ScheduleArn"]
    return Created(physical_id=name, attributes={"Arn": arn})


@handler("AWS::EKS::Cluster")
def eks_cluster(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("Name", context.physical_name)
    vpc = props.get("ResourcesVpcConfig", {})
    request: dict[str, Any] = {
        "name": name,
        "roleArn": props["RoleArn"],
        "resourcesVpcConfig": {key[:1].lower() + key[1:]: value for key, value in vpc.items()},
    }
    if "Version" in props:
        request["version"] = props["Version"]
    cluster = context.client("eks").create_cluster(**request)["cluster"]
    return Created(physical_id=name, attributes=_eks_attributes(cluster))


@handler("Custom::AWSCDK-EKS-Cluster")
def cdk_eks_cluster(context: ResourceContext) -> Created:
    """The `eks.Cluster` L2's custom resource; `Config` is the CreateCluster request."""
    config = dict(context.properties["Config"])
    config.setdefault("name", context.physical_name)
    config = {k: v for k, v in config.items() if k in ("name", "roleArn", "resourcesVpcConfig",
                                                        "version", "logging", "tags")}  # fmt: skip
    cluster = context.client("eks").create_cluster(**config)["cluster"]
    return Created(physical_id=config["name"], attributes=_eks_attributes(cluster))


def _eks_attributes(cluster: dict[str, Any]) -> dict[str, Any]:
    issuer = cluster.get("identity", {}).get("oidc", {}).get("issuer", "")
    return {
        "Arn": cluster["arn"],
        "Endpoint": cluster.get("endpoint", ""),
        "CertificateAuthorityData": cluster.get("certificateAuthority", {}).get("data", ""),
        "ClusterSecurityGroupId": cluster.get("resourcesVpcConfig", {}).get(
            "clusterSecurityGroupId", ""
        ),
        "OpenIdConnectIssuerUrl": issuer,
        "OpenIdConnectIssuer": issuer.removeprefix("https://"),
        "EncryptionConfigKeyArn": "",
    }


@handler(
    "AWS::EKS::Nodegroup",
    "AWS::EKS::FargateProfile",
    "AWS::EKS::AccessEntry",
    "AWS::EKS::Addon",
    "Custom::AWSCDK-EKS-KubernetesResource",
    "Custom::AWSCDK-EKS-HelmChart",
    "Custom::AWSCDK-EKS-KubernetesPatch",
)
def kubernetes_record(context: ResourceContext) -> Created:
    """Recorded with its resolved properties (manifests included); serving runs locally."""
    return Created(physical_id=context.physical_name, attributes={"Arn": ""}, recorded=True)


@handler(
    "AWS::ElastiCache::SubnetGroup",
    "AWS::ElastiCache::ParameterGroup",
    "AWS::ElastiCache::SecurityGroup",
)
def elasticache_named_record(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("CacheSubnetGroupName") or props.get("CacheParameterGroupName")
    return Created(physical_id=str(name or context.physical_name.lower()), recorded=True)


@handler("AWS::ElastiCache::User", "AWS::ElastiCache::UserGroup")
def elasticache_access_record(context: ResourceContext) -> Created:
    props = context.properties
    ident = str(props.get("UserId") or props.get("UserGroupId") or context.physical_name.lower())
    kind = "user" if context.resource_type.endswith("User") else "usergroup"
    arn = _arn(context, "elasticache", f"{kind}:{ident}")
    return Created(physical_id=ident, attributes={"Arn": arn, "Status": "active"}, recorded=True)


@handler(
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ServerlessCache",
)
def elasticache_cache(context: ResourceContext) -> Created:
    """Every endpoint attribute points at the local Redis from `redis_url`."""
    props = context.properties
    ident = str(
        props.get("ReplicationGroupId")
        or props.get("ClusterName")
        or props.get("ServerlessCacheName")
        or context.physical_name.lower()
    )
    url = urlsplit(context.redis_url)
    host, port = url.hostname or "127.0.0.1", str(url.port or 6379)
    attributes: dict[str, Any] = {"Arn": _arn(context, "elasticache", f"replicationgroup:{ident}")}
    for endpoint in (
        "PrimaryEndPoint", "ReaderEndPoint", "ConfigurationEndPoint", "RedisEndpoint",
        "ConfigurationEndpoint", "Endpoint", "ReaderEndpoint",
    ):  # fmt: skip
        attributes[f"{endpoint}.Address"] = host
        attributes[f"{endpoint}.Port"] = port
    attributes["ReadEndPoint.Addresses"] = host
    attributes["ReadEndPoint.Ports"] = port
    attributes["ReadEndPoint.Addresses.List"] = [host]
    attributes["ReadEndPoint.Ports.List"] = [port]
    return Created(physical_id=ident, attributes=attributes, recorded=True)
