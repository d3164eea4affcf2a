//! An EC2 Auto Scaling group in the twin, for the test binaries that scale compute
//! (`#[path = "support/asg.rs"] mod asg;`): a launch configuration and a group of
//! `min..=max` instances wanting `desired`, in one Availability Zone of its Region. The
//! twin launches its instances after `compute.instance_launch_seconds`.

use aws_sdk_autoscaling::Client;

/// Creates `name` (and its launch configuration `<name>-lc`) in `client`'s Region.
pub async fn create(client: &Client, region: &str, name: &str, min: i32, max: i32, desired: i32) {
    client
        .create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones(format!("{region}a"))
        .send()
        .await
        .unwrap();
}

/// `(desired, max, in service)` of `name`: instances `InService` count, `Pending` ones
/// are still launching.
pub async fn describe(client: &Client, name: &str) -> (i32, i32, usize) {
    let out = client
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    let g = &out.auto_scaling_groups()[0];
    let in_service = g
        .instances()
        .iter()
        .filter(|i| {
            i.lifecycle_state() == Some(&aws_sdk_autoscaling::types::LifecycleState::InService)
        })
        .count();
    (
        g.desired_capacity().unwrap(),
        g.max_size().unwrap(),
        in_service,
    )
}
