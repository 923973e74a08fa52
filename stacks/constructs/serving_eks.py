"""The serving app on EKS: a cluster this app creates or an existing one, IRSA, the manifests.

The Kubernetes objects come from `serving.k8s.serving_manifests` (the same ones
`python -m serving.k8s` renders); this construct adds what only AWS can provide: the cluster
(mode 'create'), the pods' IAM role trusted through the cluster's OIDC provider, and the
custom resource that applies the manifests with kubectl.

Network contract, mode 'create': the control plane endpoint is private and the nodes run in
the VPC's `private` subnet group. In isolated subnets (no NAT) they need interface endpoints
for ec2 (the VPC CNI), ecr.api, ecr.dkr, sts (IRSA) and eks (CDK's kubectl handler runs
`aws eks update-kubeconfig` from inside the VPC), plus S3 (image layers), next to what the app
itself calls (SageMaker API, Secrets Manager, Firehose, CloudWatch Logs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import Annotations, CfnJson, Names, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlops.config_serving import EksServing
from serving.k8s import DEFAULT_NAME, serving_manifests
from stacks.nag_reasons import suppress_serving_eks_findings

KUBERNETES_VERSION = eks.KubernetesVersion.V1_34
_PRIVATE = ec2.SubnetSelection(subnet_group_name="private")
_ALL_LOG_TYPES = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]
# CDK warnings (not security findings) raised inside the constructs aws-eks generates.
_ACKNOWLEDGED_WARNINGS = (
    ("@aws-cdk/core:addConstructMetadataFailed",
     "CDK's usage metadata cannot describe AWS managed policies; the template is unaffected."),
    ("@aws-cdk/core:addMethodMetadataFailed",
     "CDK's usage metadata cannot describe AWS managed policies; the template is unaffected."),
    ("@aws-cdk/aws-ec2:noSubnetRouteTableId",
     "The kubectl handler of an existing cluster needs only the private subnets' ids."),
)  # fmt: skip


@dataclass(frozen=True)
class NodeGroupSpec:
    """The managed node group of a created cluster (mode 'create').

    Sized for the default pod (1 vCPU, 1 GiB): a c6i.xlarge holds three next to the system
    pods, so two nodes carry six replicas. Nodes do not scale with pending pods (no Cluster
    Autoscaler or Karpenter is installed); raise `desired_size` with `max_replicas`.
    """

    instance_types: tuple[str, ...] = ("c6i.xlarge",)
    min_size: int = 2
    desired_size: int = 2
    max_size: int = 4
    disk_size_gib: int = 30


@dataclass(frozen=True)
class ExistingCluster:
    """What mode 'existing' needs beyond `EksServing.cluster_name` / `kubectl_role_arn`.

    `oidc_provider_arn`: the cluster's IAM OIDC provider (IRSA trusts it).
    `cluster_security_group_id`: when the API endpoint is private, CDK's kubectl handler runs
    in the VPC's private subnets with this group; it is also the group to open Redis to.
    """

    oidc_provider_arn: str
    cluster_security_group_id: str | None = None


class ServingOnEks(Construct):
    """The serving app's Deployment, Service, HPA and PDB on an EKS cluster, with IRSA.

    Contract: `cluster` is the cluster (created or imported); `role` is the pods' IAM role,
    holding `statements`; `manifest` applies the objects of `serving.k8s.serving_manifests`;
    `cluster_security_group` is the group pods run with (None for an existing cluster without
    `cluster_security_group_id`). Raises ValueError for mode 'off' or a missing `existing`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EksServing,
        vpc: ec2.IVpc,
        env: Mapping[str, str],
        statements: Sequence[iam.PolicyStatement],
        name_prefix: str,
        secrets_key: kms.IKey | None = None,
        existing: ExistingCluster | None = None,
        nodes: NodeGroupSpec | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        kubectl_layer: lambda_.ILayerVersion | None = None,
        app_name: str = DEFAULT_NAME,
    ) -> None:
        super().__init__(scope, construct_id)
        if config.mode == "off":
            raise ValueError("serving.eks.mode is 'off': nothing to deploy on EKS")
        layer = kubectl_layer or _default_kubectl_layer(self)
        self.cluster_security_group: ec2.ISecurityGroup | None
        created: eks.Cluster | None = None
        if config.mode == "create":
            created = self._create_cluster(
                config, vpc, name_prefix, secrets_key, log_retention, removal_policy, layer
            )
            _add_nodes_and_metrics(created, nodes or NodeGroupSpec(), name_prefix)
            # jsii's ICluster protocol and Cluster disagree on kubectl_provider's type for mypy.
            self.cluster: eks.ICluster = cast(eks.ICluster, created)
            self.cluster_security_group = created.cluster_security_group
            provider = created.open_id_connect_provider
        else:
            if existing is None:
                raise ValueError("serving.eks mode 'existing' needs `existing` (OIDC provider)")
            self.cluster, provider = self._import_cluster(config, vpc, existing, layer)
        self.role = self._service_account_role(provider, config.namespace, app_name, statements)
        objects = serving_manifests(config, env=env, role_arn=self.role.role_arn, name=app_name)
        self.manifest = eks.KubernetesManifest(
            self, "Manifests", cluster=self.cluster, manifest=objects, overwrite=True
        )
        self._accept_generated_findings(created)

    def _accept_generated_findings(self, created: eks.Cluster | None) -> None:
        """Suppress (with reasons) what aws-eks generates: here, and in the nested stacks it
        adds to this stack (the cluster resource and kubectl providers)."""
        stack = Stack.of(self)
        ids = (
            ["@aws-cdk--aws-eks.ClusterResourceProvider", "@aws-cdk--aws-eks.KubectlProvider"]
            if created is not None
            else [f"{Names.node_unique_id(self.cluster.node)}-KubectlProvider"]
        )
        providers = tuple(p for p in map(stack.node.try_find_child, ids) if p is not None)
        for scope in (self, *providers):
            for warning, reason in _ACKNOWLEDGED_WARNINGS:
                Annotations.of(scope).acknowledge_warning(warning, reason)
        admin_role = created.admin_role if created is not None else None
        suppress_serving_eks_findings(self, admin_role=admin_role, providers=providers)

    def _create_cluster(
        self,
        config: EksServing,
        vpc: ec2.IVpc,
        name_prefix: str,
        secrets_key: kms.IKey | None,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        layer: lambda_.ILayerVersion,
    ) -> eks.Cluster:
        name = config.cluster_name or f"{name_prefix}-serving"
        control_plane_logs = logs.LogGroup(
            self, "ControlPlaneLogs",
            log_group_name=f"/aws/eks/{name}/cluster",  # EKS's fixed name; created here to set
            retention=log_retention,                     # retention and encryption
            encryption_key=secrets_key,
            removal_policy=removal_policy,
        )  # fmt: skip
        cluster = eks.Cluster(
            self, "Cluster",
            cluster_name=name,
            version=KUBERNETES_VERSION,
            kubectl_layer=layer,
            vpc=vpc,
            vpc_subnets=[_PRIVATE],
            endpoint_access=eks.EndpointAccess.PRIVATE,
            authentication_mode=eks.AuthenticationMode.API,
            default_capacity=0,
            secrets_encryption_key=secrets_key,
            cluster_logging=_ALL_LOG_TYPES,
            output_config_command=False,
        )  # fmt: skip
        cluster.node.add_dependency(control_plane_logs)
        return cluster

    def _import_cluster(
        self,
        config: EksServing,
        vpc: ec2.IVpc,
        existing: ExistingCluster,
        layer: lambda_.ILayerVersion,
    ) -> tuple[eks.ICluster, iam.IOpenIdConnectProvider]:
        provider = iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(
            self, "Oidc", existing.oidc_provider_arn
        )
        group_id = existing.cluster_security_group_id
        in_vpc = group_id is not None
        cluster = eks.Cluster.from_cluster_attributes(
            self, "Cluster",
            cluster_name=config.cluster_name or "",
            kubectl_role_arn=config.kubectl_role_arn,
            kubectl_layer=layer,
            open_id_connect_provider=provider,
            vpc=vpc,
            cluster_security_group_id=group_id,
            kubectl_security_group_id=group_id,
            kubectl_private_subnet_ids=(
                vpc.select_subnets(subnet_group_name="private").subnet_ids if in_vpc else None
            ),
        )  # fmt: skip
        self.cluster_security_group = (
            ec2.SecurityGroup.from_security_group_id(self, "ClusterSecurityGroup", group_id)
            if group_id is not None
            else None
        )
        return cluster, provider

    def _service_account_role(
        self,
        provider: iam.IOpenIdConnectProvider,
        namespace: str,
        service_account: str,
        statements: Sequence[iam.PolicyStatement],
    ) -> iam.Role:
        """IRSA: only the app's service account, asking STS for itself, may assume the role.

        The issuer is a token until deployment, so the condition keys go through CfnJson
        (as CDK's own eks.ServiceAccount does).
        """
        issuer = provider.open_id_connect_provider_issuer
        conditions = CfnJson(
            self, "ServiceAccountCondition",
            value={
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": "sts.amazonaws.com",
            },
        )  # fmt: skip
        role = iam.Role(
            self, "ServiceAccountRole",
            description=f"Pods of {namespace}/{service_account} (IRSA)",
            assumed_by=iam.OpenIdConnectPrincipal(provider, {"StringEquals": conditions}),
        )  # fmt: skip
        for statement in statements:
            role.add_to_policy(statement)
        return role


def _add_nodes_and_metrics(cluster: eks.Cluster, spec: NodeGroupSpec, name_prefix: str) -> None:
    """The node group, then the metrics-server add-on the HPA reads CPU from (its pods need
    nodes, so the add-on waits for them)."""
    nodes = cluster.add_nodegroup_capacity(
        "Nodes",
        nodegroup_name=f"{name_prefix}-serving",
        instance_types=[ec2.InstanceType(t) for t in spec.instance_types],
        ami_type=eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
        capacity_type=eks.CapacityType.ON_DEMAND,
        min_size=spec.min_size,
        desired_size=spec.desired_size,
        max_size=spec.max_size,
        disk_size=spec.disk_size_gib,
        subnets=_PRIVATE,
        max_unavailable=1,
    )
    metrics = eks.CfnAddon(
        cluster, "MetricsServer", cluster_name=cluster.cluster_name,
        addon_name="metrics-server", resolve_conflicts="OVERWRITE",
    )  # fmt: skip
    metrics.node.add_dependency(nodes)


def _default_kubectl_layer(scope: Construct) -> lambda_.ILayerVersion:
    """kubectl + helm for CDK's kubectl handler, matching KUBERNETES_VERSION.

    aws-cdk.lambda-layer-kubectl-v34==2.0.0 is the newest release that resolves next to
    aws-cdk-lib 2.231 / jsii 1.119 / typeguard 4.2.1 (later ones pin typeguard 2.13.3).
    """
    from aws_cdk.lambda_layer_kubectl_v34 import KubectlV34Layer

    return KubectlV34Layer(scope, "KubectlLayer")
