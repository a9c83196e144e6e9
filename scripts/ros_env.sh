# Sourced by our scripts: keep every DDS participant on loopback, in a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( 20 + $$ % 80 ))}
