//! What a resource type usually takes when the stack's own history says nothing about it.
//!
//! Medians and log-spreads from the durations seen in the wild
//! (`shared/reference/peers.md`, "How long resources take"): CloudFront 5–20 min, RDS 5–10 min
//! single-AZ and 15–20 min Multi-AZ, ElastiCache 6–9 min, NAT gateway 1.5–2 min, EKS 8–10 min,
//! ALB 1.5–3 min, ECS services minutes. The rest are typical CloudFormation timings (IAM waits
//! for propagation, Route 53 for INSYNC). A prior only seeds the estimate: the stack's own
//! history replaces it after a run or two.

/// (median seconds, log-spread σ) for a type and action (`CREATE`, `UPDATE`, `DELETE`…).
pub fn prior(resource_type: &str, action: &str) -> (f64, f64) {
    let (create, sigma, update, delete): (f64, f64, f64, f64) = match resource_type {
        "AWS::CloudFront::Distribution" => (540.0, 0.45, 300.0, 600.0),
        "AWS::RDS::DBInstance" => (600.0, 0.4, 480.0, 420.0),
        "AWS::RDS::DBCluster" => (420.0, 0.4, 300.0, 300.0),
        "AWS::ElastiCache::ReplicationGroup" => (450.0, 0.25, 600.0, 420.0),
        "AWS::ElastiCache::CacheCluster" => (360.0, 0.3, 420.0, 300.0),
        "AWS::EKS::Cluster" => (540.0, 0.15, 900.0, 600.0),
        "AWS::EKS::Nodegroup" => (240.0, 0.3, 300.0, 300.0),
        "AWS::OpenSearchService::Domain" | "AWS::Elasticsearch::Domain" => {
            (900.0, 0.4, 900.0, 600.0)
        }
        "AWS::EC2::NatGateway" => (105.0, 0.15, 60.0, 60.0),
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => (130.0, 0.25, 20.0, 30.0),
        "AWS::ECS::Service" => (180.0, 0.6, 240.0, 120.0),
        "AWS::AutoScaling::AutoScalingGroup" => (120.0, 0.7, 120.0, 180.0),
        "AWS::EC2::Instance" => (60.0, 0.4, 60.0, 60.0),
        "AWS::CertificateManager::Certificate" => (180.0, 0.8, 30.0, 10.0),
        "AWS::Route53::RecordSet" | "AWS::Route53::RecordSetGroup" => (45.0, 0.4, 45.0, 45.0),
        "AWS::CloudFormation::Stack" => (300.0, 1.0, 300.0, 240.0),
        "AWS::Lambda::Function" => (15.0, 0.6, 10.0, 5.0),
        "AWS::IAM::Role" | "AWS::IAM::InstanceProfile" => (20.0, 0.4, 15.0, 5.0),
        "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => (15.0, 0.5, 15.0, 5.0),
        "AWS::S3::Bucket" => (22.0, 0.4, 10.0, 10.0),
        "AWS::SQS::Queue" => (30.0, 0.6, 30.0, 60.0),
        "AWS::DynamoDB::Table" => (15.0, 0.6, 15.0, 20.0),
        "AWS::EC2::VPC" | "AWS::EC2::InternetGateway" => (15.0, 0.4, 10.0, 10.0),
        "AWS::EC2::SecurityGroup" | "AWS::EC2::Subnet" | "AWS::EC2::RouteTable" => {
            (6.0, 0.5, 5.0, 5.0)
        }
        "AWS::ECS::TaskDefinition" | "AWS::Logs::LogGroup" | "AWS::SNS::Topic" => {
            (4.0, 0.6, 4.0, 3.0)
        }
        // Anything else: most resources take seconds, a few take many minutes.
        _ => (20.0, 1.2, 20.0, 15.0),
    };
    let median = match action {
        "UPDATE" => update,
        "DELETE" => delete,
        _ => create,
    };
    // An update or a delete is less like the create than the create is like itself.
    let sigma = if action == "CREATE" || action == "IMPORT" {
        sigma
    } else {
        sigma.max(0.5)
    };
    (median, sigma)
}

/// Whether the reference table knows the type (for the "basis" line of an estimate).
pub fn is_known(resource_type: &str) -> bool {
    prior(resource_type, "CREATE") != prior("AWS::Unknown::Type", "CREATE")
}

/// A whole operation with no history and nothing to go on: minutes, widely spread.
pub const GENERIC_OPERATION: (f64, f64) = (240.0, 0.9);

/// The stack's wrap-up after its last resource when no past run shows it (seconds).
pub const GENERIC_TAIL: f64 = 10.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_types_are_slow_and_unknown_types_are_vague() {
        assert!(prior("AWS::CloudFront::Distribution", "CREATE").0 > 300.0);
        assert!(prior("AWS::IAM::Role", "CREATE").0 < 60.0);
        assert!(is_known("AWS::RDS::DBInstance"));
        assert!(!is_known("Custom::Thing"));
        assert!(prior("Custom::Thing", "CREATE").1 >= 1.0);
        assert!(prior("AWS::Lambda::Function", "UPDATE").1 >= 0.5);
    }
}
