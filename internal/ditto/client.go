package ditto

// Client is the MQTT connection the agent needs. Publish sends with QoS 1,
// not retained. Messages of subscribed topics, connects and connection
// losses go to the agent's Connected, Message and Disconnected.
// (paho.go has the implementation over Eclipse Paho; tests use a fake.)
type Client interface {
	Subscribe(topics ...string) error
	Publish(topic string, payload []byte) error
}
