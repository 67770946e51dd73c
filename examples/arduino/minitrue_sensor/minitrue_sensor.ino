// minitrue_sensor: an Arduino sketch for `minitrue-publisher --serial PORT --baud 9600`.
//
// It needs no sensor library: a thermistor or TMP36 on A0 stands in for temperature, a
// potentiometer on A1 for humidity and a photoresistor (LDR divider) on A2 for light. With
// nothing wired the analog pins float and the numbers wander, which is fine for a demo.
//
// It prints, once every REPORT_MS, each line format the publisher accepts:
//
//   temperature:23.45                                   one metric:value pair
//   humidity=40.1,light=312                             key=value pairs, one metric each
//   {"metric_name":"battery","value":4.87}             JSON; device_id and timestamp optional
//
// The publisher stamps its --device_id (default arduino_1) and the current time on every
// reading, and publishes it to iot/sensors/{metric_name}. Lines starting with '#' are
// comments: the banner below is skipped, not reported as a bad line.

const unsigned long BAUD = 9600;
const unsigned long REPORT_MS = 2000;

const int TEMPERATURE_PIN = A0;
const int HUMIDITY_PIN = A1;
const int LIGHT_PIN = A2;

// TMP36: 10 mV per degree C with a 500 mV offset, read against a 5 V reference.
float readTemperature() {
  float millivolts = analogRead(TEMPERATURE_PIN) * (5000.0 / 1023.0);
  return (millivolts - 500.0) / 10.0;
}

// A potentiometer mapped onto 0-100 % relative humidity.
float readHumidity() {
  return analogRead(HUMIDITY_PIN) * (100.0 / 1023.0);
}

// Raw LDR divider reading: brighter is higher.
int readLight() {
  return analogRead(LIGHT_PIN);
}

// Supply voltage from the internal 1.1 V reference (AVR boards); 5.0 elsewhere.
float readSupplyVolts() {
#if defined(__AVR_ATmega328P__)
  ADMUX = _BV(REFS0) | _BV(MUX3) | _BV(MUX2) | _BV(MUX1);
  delay(2);
  ADCSRA |= _BV(ADSC);
  while (bit_is_set(ADCSRA, ADSC)) {
  }
  long raw = ADCL;
  raw |= ADCH << 8;
  return 1125.3 / raw;  // 1.1 V * 1023
#else
  return 5.0;
#endif
}

void setup() {
  Serial.begin(BAUD);
  Serial.println("# minitrue_sensor ready");
}

void loop() {
  // Format 1: metric:value
  Serial.print("temperature:");
  Serial.println(readTemperature(), 2);

  // Format 2: key=value pairs
  Serial.print("humidity=");
  Serial.print(readHumidity(), 1);
  Serial.print(",light=");
  Serial.println(readLight());

  // Format 3: JSON (the MQTT payload without device_id and timestamp)
  Serial.print("{\"metric_name\":\"battery\",\"value\":");
  Serial.print(readSupplyVolts(), 2);
  Serial.println("}");

  delay(REPORT_MS);
}
